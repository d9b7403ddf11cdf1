/**
 * The seam to D-Bus: one connection to a bus that calls methods with explicit signatures
 * (no introspection round trip), bounds every call with a timeout, replays its match
 * rules after a reconnect, and reconnects by itself when the bus goes away.
 */
import { EventEmitter } from 'node:events';
import dbus from 'dbus-next';
import type { Message as DbusMessage, MessageBus } from 'dbus-next';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';

const { Message, MessageType, DBusError } = dbus;

/** A D-Bus method call. */
export interface DbusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  /** D-Bus signature of `body`; empty or absent for no arguments. */
  signature?: string;
  body?: unknown[];
}

export interface DbusCallOptions {
  /** Milliseconds before the call fails with code `timeout`. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A signal as delivered to listeners. */
export interface DbusSignal {
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
}

/** An error reply from the remote side, with its D-Bus error name. */
export class DbusRemoteError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = 'DbusRemoteError';
  }
}

/** What the rest of the code needs from a bus; tests and other transports can implement it. */
export interface DbusClient extends EventEmitter {
  call(call: DbusCall, opts?: DbusCallOptions): Promise<unknown[]>;
  /** Adds a match rule now and after every reconnect. */
  addMatch(rule: string): Promise<void>;
  /** True while a connection is established. */
  readonly connected: boolean;
  close(): void;
  // Events: 'connected', 'disconnected', 'signal' (DbusSignal).
}

export interface DbusConnectionOptions {
  /** Bus address (`unix:path=...`); default DBUS_SYSTEM_BUS_ADDRESS or the system bus socket. */
  address?: string;
  /** Delay before the first reconnect attempt; doubles up to 5 s. */
  reconnectMinMs?: number;
  /** Connects to a bus; replaceable for tests. */
  connect?: (address: string) => MessageBus;
}

const SYSTEM_BUS = 'unix:path=/run/dbus/system_bus_socket';

function defaultConnect(address: string): MessageBus {
  // dbus-next reads the address from the environment only; a private bus object per connection.
  const prev = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
  try {
    return dbus.systemBus();
  } finally {
    if (prev === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = prev;
  }
}

/**
 * A self-healing connection. Calls made while disconnected try to connect once and fail
 * with code `service-unavailable` when the bus cannot be reached.
 */
export class DbusConnection extends EventEmitter implements DbusClient {
  private bus: MessageBus | null = null;
  private ready: Promise<MessageBus> | null = null;
  private readonly matches = new Set<string>();
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs: number;
  private readonly address: string;
  private readonly connectFn: (address: string) => MessageBus;

  constructor(private readonly opts: DbusConnectionOptions = {}) {
    super();
    this.address = opts.address ?? process.env.DBUS_SYSTEM_BUS_ADDRESS ?? SYSTEM_BUS;
    this.connectFn = opts.connect ?? defaultConnect;
    this.retryMs = opts.reconnectMinMs ?? 200;
  }

  get connected(): boolean {
    return this.bus !== null;
  }

  /** Connects (or returns the live connection). */
  ensure(): Promise<MessageBus> {
    if (this.closed) return Promise.reject(new TuxsecError(ErrorCodes.serviceUnavailable, 'cannot use D-Bus: connection closed'));
    if (this.bus) return Promise.resolve(this.bus);
    if (!this.ready) {
      this.ready = this.open().finally(() => {
        this.ready = null;
      });
    }
    return this.ready;
  }

  private open(): Promise<MessageBus> {
    return new Promise<MessageBus>((resolve, reject) => {
      let bus: MessageBus;
      try {
        bus = this.connectFn(this.address);
      } catch (e) {
        reject(new TuxsecError(ErrorCodes.serviceUnavailable, `cannot connect to D-Bus at "${this.address}": ${String(e)}`));
        return;
      }
      let settled = false;
      const timer = setTimeout(() => fail(new Error('no answer to Hello within 5 s')), 5000);
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          try {
            bus.disconnect();
          } catch {
            // already gone
          }
          reject(
            new TuxsecError(
              ErrorCodes.serviceUnavailable,
              `cannot connect to D-Bus at "${this.address}": ${err instanceof Error ? err.message : String(err)}`,
            ),
          );
          return;
        }
        this.lost(bus);
      };
      bus.on('error', fail);
      // dbus-next does not forward the stream's end; the connection object does emit it.
      const conn = (bus as unknown as { _connection?: EventEmitter })._connection;
      conn?.on('end', () => fail(new Error('connection ended')));
      bus.on('message', (msg: DbusMessage) => {
        if (msg.type !== MessageType.SIGNAL) return;
        const sig: DbusSignal = {
          sender: msg.sender,
          path: msg.path,
          interface: msg.interface,
          member: msg.member,
          body: msg.body ?? [],
        };
        this.emit('signal', sig);
      });
      bus.on('connect', () => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        this.bus = bus;
        this.retryMs = this.opts.reconnectMinMs ?? 200;
        void Promise.all([...this.matches].map((m) => this.rawAddMatch(bus, m)))
          .catch(() => undefined)
          .finally(() => this.emit('connected'));
        resolve(bus);
      });
    });
  }

  private lost(bus: MessageBus): void {
    if (this.bus !== bus) return;
    this.bus = null;
    try {
      bus.disconnect();
    } catch {
      // already gone
    }
    this.emit('disconnected');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer || this.matches.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.ensure().catch(() => {
        this.retryMs = Math.min(this.retryMs * 2, 5000);
        this.scheduleReconnect();
      });
    }, this.retryMs);
    this.retryTimer.unref();
  }

  private rawAddMatch(bus: MessageBus, rule: string): Promise<unknown> {
    return bus.call(
      new Message({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'AddMatch',
        signature: 's',
        body: [rule],
      }),
    );
  }

  async addMatch(rule: string): Promise<void> {
    this.matches.add(rule);
    let bus: MessageBus;
    try {
      bus = await this.ensure();
    } catch (e) {
      this.scheduleReconnect();
      throw e;
    }
    await this.rawAddMatch(bus, rule);
  }

  async call(call: DbusCall, opts: DbusCallOptions = {}): Promise<unknown[]> {
    const bus = await this.ensure();
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const msg = new Message({
      destination: call.destination,
      path: call.path,
      interface: call.interface,
      member: call.member,
      signature: call.signature ?? '',
      body: call.body ?? [],
    });
    const what = `${call.interface}.${call.member}`;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TuxsecError(ErrorCodes.timeout, `cannot call ${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
      if (opts.signal) {
        onAbort = () => reject(new TuxsecError(ErrorCodes.timeout, `cannot call ${what}: request aborted`));
        if (opts.signal.aborted) onAbort();
        else opts.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      const reply = (await Promise.race([bus.call(msg), guard])) as DbusMessage;
      return reply.body ?? [];
    } catch (e) {
      if (e instanceof DBusError) throw new DbusRemoteError(e.type, e.text ?? e.message);
      throw e;
    } finally {
      clearTimeout(timer);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
      if (msg.serial !== null) {
        // A call that timed out must not leave its reply handler behind.
        const handlers = (bus as unknown as { _methodReturnHandlers?: Record<number, unknown> })._methodReturnHandlers;
        if (handlers) delete handlers[msg.serial];
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const bus = this.bus;
    this.bus = null;
    if (bus) {
      try {
        bus.disconnect();
      } catch {
        // already gone
      }
    }
  }
}
