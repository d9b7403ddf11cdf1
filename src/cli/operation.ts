/**
 * Long-running operations on the command line: `execute` waits for one (progress on stderr when
 * it is a terminal), and `operation status|result|cancel|list` follow one up.
 */
import type { RootdClient } from '../client/rootd-client.ts';
import { terminalSafe } from '../common/terminal-text.ts';
import type { OperationInfo } from '../protocol/messages.ts';

/** One progress line: phase and percentage, cut to the terminal. */
function progressLine(info: OperationInfo): string {
  const pct = info.fraction === null ? '' : ` ${(info.fraction * 100).toFixed(0)}%`;
  const line = `${info.module} ${info.action}: ${terminalSafe(info.phase ?? 'running')}${pct}`;
  // A terminal of unknown size (0 columns, as under script(1)) is taken as 80 wide.
  const width = process.stderr.columns > 0 ? process.stderr.columns : 80;
  return line.length >= width ? line.slice(0, width - 1) : line;
}

/** How long a Ctrl-C before rootd's answer waits to learn whether an operation started, to cancel it. */
const INTERRUPT_GRACE_MS = 2000;

/**
 * `execute`: runs the action and gives its data, or throws its error. A long-running one is waited
 * for (progress on stderr when it is a terminal), or with `noWait` its operation id is given.
 * Ctrl-C cancels the operation, and the wait ends with its outcome; a Ctrl-C that comes before
 * rootd's answer cancels the operation it turns out to be, or ends the CLI (exit 130) as before
 * for an ordinary action; a second Ctrl-C ends the CLI at once.
 */
export async function execute(
  client: RootdClient,
  req: { module: string; action: string; params: Record<string, unknown>; noWait: boolean },
): Promise<{ data: unknown } | { id: string }> {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  let opId: string | null = null;
  let interrupts = 0;
  const cancel = (id: string) => {
    process.stderr.write(`${shown ? '\n' : ''}cancelling operation ${id}\n`);
    shown = false;
    client.operationCancel(id).catch(() => {});
  };
  const onInt = () => {
    if (++interrupts > 1) process.exit(130);
    if (opId !== null) cancel(opId);
    else setTimeout(() => process.exit(130), INTERRUPT_GRACE_MS).unref();
  };
  process.on('SIGINT', onInt);
  try {
    const r = await client.start(req.module, req.action, req.params, { coerce: true });
    if ('data' in r) {
      if (interrupts > 0) process.exit(130);
      return r;
    }
    opId = r.operation.id;
    if (req.noWait) return { id: opId };
    if (interrupts > 0) cancel(opId);
    const data = await client.waitForOperation(r.operation, (info) => {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${progressLine(info)}`);
      shown = true;
    });
    return { data };
  } finally {
    process.off('SIGINT', onInt);
    if (shown) process.stderr.write('\r\x1b[K');
  }
}

/** `operation status|result|cancel ID` and `operation list`: what each prints (as JSON). */
export async function operationCommand(client: RootdClient, sub: string, id: string | undefined): Promise<unknown> {
  switch (sub) {
    case 'status':
      return client.operationStatus(id!);
    case 'result':
      return client.operationResult(id!);
    case 'cancel':
      return client.operationCancel(id!);
    default:
      return client.operations();
  }
}
