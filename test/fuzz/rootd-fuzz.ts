/**
 * Fuzzes a running tuxsec-rootd over its socket. Each case is one connection: a few request lines
 * (valid requests, mutations of them, near-limit and overlong lines, odd values) written with a
 * framing trick (1-byte writes, random cuts, CRLF, half-close, abort). fast-check generates the
 * cases from a seed and shrinks a failing one to a minimal reproducer.
 *
 * Invariants checked per case: every answer is one well-formed JSON line; every request line before
 * an overlong one gets exactly one answer, with its id; an overlong line gets message-too-large and
 * the connection closes; nothing hangs. Across the run: the daemon never dies, and its RSS is sampled.
 */
import net from 'node:net';
import fc from 'fast-check';
import { nestingDepth } from '../../src/protocol/json.ts';

export interface RootdTarget {
  socketPath: string;
  maxMessageBytes: number;
  maxDepth: number;
  /** True while the daemon process lives. */
  alive(): boolean;
  /** Restarts a daemon that died (after a crash was recorded). */
  restart(): Promise<void>;
  pid(): number;
}

export interface Violation {
  invariant: string;
  detail: string;
}

interface ConnCase {
  lines: Buffer[];
  crlf: boolean;
  tail: Buffer | null;
  split: 'whole' | 'bytes' | 'cuts';
  cuts: number[];
  ending: 'wait' | 'half-close' | 'abort';
}

const ACTIONS = ['get_info', 'get_hostname', 'get_uptime', 'get_inventory', 'get_os_info', 'get_memory', 'list_modules', 'nope', 'constructor'];

function requestArb(): fc.Arbitrary<Record<string, unknown>> {
  const id = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.constant(null), fc.string({ minLength: 250, maxLength: 300 }));
  const params = fc.oneof(fc.constant({}), fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }));
  return fc.oneof(
    fc.record({ type: fc.constantFrom('ping', 'list_modules', 'system_info'), request_id: id, data: fc.constant({}) }),
    fc.record({ type: fc.constant('module_info'), request_id: id, data: fc.record({ module: fc.constantFrom('systeminfo', 'firewalld', 'nope', '__proto__') }) }),
    fc.record({
      type: fc.constant('execute_command'),
      request_id: id,
      data: fc.record({ module: fc.constantFrom('systeminfo', 'systeminfo', 'firewalld', 'x'), action: fc.constantFrom(...ACTIONS), parameters: params }),
    }),
    fc.record({ type: fc.string({ maxLength: 10 }), request_id: id, data: fc.jsonValue({ maxDepth: 2 }) }),
  );
}

/** Byte-level edits of a valid request: the mutations a fuzzer from outside would make. */
const SPLICES = ['\r', '\u0000', '\\ud800', '\\udfff', '1e999', '-0', '9'.repeat(400), '"__proto__":{"a":1},', '{'.repeat(40), '[', '\\', '"', ',', '\xff\xfe', '\u2028', '\n'];

function mutate(buf: Buffer, edits: Array<[number, number, number]>): Buffer {
  let b = buf;
  for (const [kind, at, arg] of edits) {
    const pos = b.length === 0 ? 0 : at % (b.length + 1);
    if (kind === 0) {
      b = Buffer.from(b);
      if (b.length > 0) b[pos % b.length] = arg & 0xff;
    } else if (kind === 1) {
      b = Buffer.concat([b.subarray(0, pos), Buffer.from(SPLICES[arg % SPLICES.length]!, 'latin1'), b.subarray(pos)]);
    } else if (kind === 2) {
      b = Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(b.length, pos + (arg % 16) + 1))]);
    } else if (kind === 3) {
      b = Buffer.concat([b.subarray(0, pos), b.subarray(pos, pos + (arg % 32) + 1), b.subarray(pos)]);
    } else {
      b = b.subarray(0, pos);
    }
  }
  return b;
}

function lineArb(max: number): fc.Arbitrary<Buffer> {
  const valid = requestArb().map((r) => Buffer.from(JSON.stringify(r)));
  const edit = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.nat(), fc.nat());
  const mutated = fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([b, e]) => mutate(b, e));
  // A ping padded to max+delta bytes: the edge of max_message_bytes from both sides.
  const sized = fc.tuple(fc.integer({ min: -16, max: 16 }), fc.string({ maxLength: 8 })).map(([delta, id]) => {
    const head = `{"type":"ping","request_id":${JSON.stringify(id)},"data":{"pad":"`;
    const tail = '"}}';
    return Buffer.from(head + 'x'.repeat(Math.max(0, max + delta - Buffer.byteLength(head) - tail.length)) + tail);
  });
  const deep = fc.integer({ min: 1, max: 400 }).map((n) => Buffer.from(`{"type":"ping","request_id":"d${n}","data":{"x":${'['.repeat(n)}${']'.repeat(n)}}}`));
  return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 6, arbitrary: mutated }, { weight: 1, arbitrary: sized }, { weight: 1, arbitrary: deep }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) });
}

export function caseArb(max: number): fc.Arbitrary<ConnCase> {
  // Newlines inside a generated line would make it two: the model splits on the bytes sent, so keep them.
  return fc.record({
    lines: fc.array(lineArb(max), { minLength: 1, maxLength: 12 }),
    crlf: fc.boolean(),
    tail: fc.option(lineArb(max), { freq: 4 }),
    split: fc.constantFrom('whole', 'whole', 'bytes', 'cuts'),
    cuts: fc.array(fc.nat(), { maxLength: 8 }),
    ending: fc.constantFrom('wait', 'wait', 'half-close', 'abort'),
  }) as fc.Arbitrary<ConnCase>;
}

/** What the daemon must answer for the bytes of a case: one entry per expected answer. */
function expectedAnswers(payload: Buffer, c: ConnCase, t: RootdTarget): { ids: Array<string | null>; overflow: boolean } {
  const ids: Array<string | null> = [];
  const pieces: Buffer[] = [];
  let start = 0;
  for (let i = payload.indexOf(10); i !== -1; i = payload.indexOf(10, start)) {
    pieces.push(payload.subarray(start, i));
    start = i + 1;
  }
  const rest = payload.subarray(start);
  const expect = (line: Buffer) => {
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
    if (line.length === 0) return;
    ids.push(idOf(line, t.maxDepth));
  };
  for (const p of pieces) {
    if (p.length > t.maxMessageBytes) return { ids: [...ids, 'overflow'], overflow: true };
    expect(p);
  }
  if (rest.length > t.maxMessageBytes) return { ids: [...ids, 'overflow'], overflow: true };
  if (c.ending === 'half-close') expect(rest);
  return { ids, overflow: false };
}

/** The id the daemon echoes for a line, or null when it answers "unknown" or we cannot tell. */
function idOf(line: Buffer, maxDepth: number): string | null {
  if (nestingDepth(line, maxDepth) > maxDepth) return null;
  let msg: unknown;
  try {
    msg = JSON.parse(line.toString('utf8'));
  } catch {
    return null;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return null;
  const id = (msg as Record<string, unknown>).request_id;
  if (typeof id === 'string' && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return null;
}

function wellFormed(l: string): string | null {
  let r: unknown;
  try {
    r = JSON.parse(l);
  } catch {
    return `answer is not JSON: ${l.slice(0, 200)}`;
  }
  const o = r as { type?: unknown; request_id?: unknown; data?: unknown };
  if (o.type !== 'success' && o.type !== 'error') return `answer type ${String(o.type)}`;
  // A numeric request_id comes back as the same number, as the Python rootd echoed it.
  if (typeof o.request_id !== 'string' && typeof o.request_id !== 'number') return 'answer without a string or number request_id';
  if (o.data === null || typeof o.data !== 'object') return 'answer without a data object';
  const d = o.data as { error?: unknown; code?: unknown };
  if (o.type === 'error' && (typeof d.error !== 'string' || typeof d.code !== 'string')) return `error answer without error and code: ${l.slice(0, 200)}`;
  return null;
}

/** Runs one case on a new connection; returns the broken invariant, or null. */
export async function runCase(t: RootdTarget, c: ConnCase, timeoutMs = 20_000): Promise<Violation | null> {
  const term = c.crlf ? '\r\n' : '\n';
  const payload = Buffer.concat([...c.lines.flatMap((l) => [l, Buffer.from(term)]), c.tail ?? Buffer.alloc(0)]);
  const { ids: expected, overflow } = expectedAnswers(payload, c, t);
  const sock = net.createConnection(t.socketPath);
  sock.on('error', () => {});
  const answers: string[] = [];
  let buf = '';
  let closed = false;
  const changed: Array<() => void> = [];
  const wake = () => changed.splice(0).forEach((f) => f());
  sock.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      answers.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake();
  });
  sock.on('close', () => {
    closed = true;
    wake();
  });
  await new Promise<void>((resolve) => {
    sock.once('connect', resolve);
    sock.once('close', resolve);
  });
  if (closed) return { invariant: 'connect', detail: 'the daemon closed the connection before any request' };
  const chunks: Buffer[] =
    c.split === 'bytes' && payload.length <= 4096
      ? [...payload].map((b) => Buffer.of(b))
      : c.split === 'cuts'
        ? (() => {
            const pts = [...new Set(c.cuts.map((x) => x % (payload.length + 1)))].sort((a, b) => a - b);
            const out: Buffer[] = [];
            let prev = 0;
            for (const p of pts) out.push(payload.subarray(prev, (prev = p)));
            out.push(payload.subarray(prev));
            return out.filter((b) => b.length > 0);
          })()
        : [payload];
  for (let i = 0; i < chunks.length && !closed; i++) {
    sock.write(chunks[i]!);
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  if (c.ending === 'abort') {
    sock.destroy();
    return null;
  }
  if (c.ending === 'half-close') sock.end();
  const deadline = Date.now() + timeoutMs;
  const want = expected.length;
  while (answers.length < want && !closed && Date.now() < deadline) {
    await new Promise<void>((r) => {
      changed.push(r);
      setTimeout(r, 200);
    });
  }
  if (overflow || c.ending === 'half-close') {
    // The daemon ends the connection once it has answered: wait for that too.
    while (!closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        changed.push(r);
        setTimeout(r, 200);
      });
    }
  }
  sock.destroy();
  for (const a of answers) {
    const bad = wellFormed(a);
    if (bad) return { invariant: 'well-formed answer', detail: bad };
  }
  if (answers.length !== want) {
    return {
      invariant: 'one answer per request',
      detail: `expected ${want} answers (${JSON.stringify(expected)}), got ${answers.length}${closed ? ' before the connection closed' : ` within ${timeoutMs} ms`}: ${JSON.stringify(answers.map((a) => a.slice(0, 120)))}`,
    };
  }
  const got = answers.map((a) => JSON.parse(a) as { request_id: string | number; data: { code?: string } });
  if (overflow && got.at(-1)?.data.code !== 'message-too-large') {
    return { invariant: 'overflow answered last', detail: `last answer ${JSON.stringify(answers.at(-1)).slice(0, 200)}` };
  }
  const ids = got.map((g) => String(g.request_id));
  for (const id of expected) {
    if (id === null || id === 'overflow') continue;
    const i = ids.indexOf(id);
    if (i === -1) return { invariant: 'answer carries its id', detail: `no answer with request_id ${JSON.stringify(id).slice(0, 80)}; got ${JSON.stringify(ids).slice(0, 300)}` };
    ids.splice(i, 1);
  }
  if (overflow && !closed) return { invariant: 'overflow closes', detail: 'connection still open after message-too-large' };
  return null;
}

/** Printable, short form of bytes: runs of one character longer than 16 become `<c x N>`. */
export function shortText(b: Buffer): string {
  return b.toString('latin1').replace(/(.)\1{16,}/gs, (run, ch: string) => `<${ch} x ${run.length}>`);
}

/** Printable form of a case, to replay by hand. */
export function describeCase(c: ConnCase): string {
  return JSON.stringify({ ...c, lines: c.lines.map(shortText), tail: c.tail ? shortText(c.tail) : null });
}
