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

/**
 * Waits for an operation to finish; gives its data, or throws its error, as `execute` does
 * for an ordinary action. Ctrl-C cancels the operation, then the wait ends with its outcome.
 */
export async function waitForOperation(client: RootdClient, started: OperationInfo): Promise<unknown> {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  const onInt = () => {
    process.stderr.write(`${shown ? '\n' : ''}cancelling operation ${started.id}\n`);
    shown = false;
    client.operationCancel(started.id).catch(() => {});
  };
  process.on('SIGINT', onInt);
  try {
    return await client.waitForOperation(started, (info) => {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${progressLine(info)}`);
      shown = true;
    });
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
