// What the rootd benchmarks share: requests/s and latency of `systeminfo get_hostname` on one
// connection, one request at a time, and the statistics they print.
import net from 'node:net';

const LINE = JSON.stringify({ type: 'execute_command', request_id: 'b', data: { module: 'systeminfo', action: 'get_hostname', parameters: {} } }) + '\n';

export interface Rate {
  rps: number;
  /** Latencies in ms, sorted. */
  lat: number[];
}

/** One persistent connection, one request at a time, for `ms`: requests/s and sorted latencies. */
export async function sequential(sock: string, ms: number): Promise<Rate> {
  const s = net.createConnection(sock);
  await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
  let buf = '';
  let wake: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf += d.toString();
    if (buf.includes('\n')) wake?.();
  });
  const lat: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const t = performance.now();
    await new Promise<void>((res) => {
      wake = res;
      s.write(LINE);
    });
    buf = buf.slice(buf.indexOf('\n') + 1);
    lat.push(performance.now() - t);
  }
  s.destroy();
  return { rps: lat.length / ((performance.now() - t0) / 1000), lat: lat.sort((a, b) => a - b) };
}

/** The p-th percentile of sorted numbers. */
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
export const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** (max - min) / median: how much rounds of the same condition differ. */
export const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / med(xs);

/** A markdown row of rounds: requests/s each, and the medians of requests/s, p50 and p99. */
export function rateRow(label: string, rounds: Rate[]): string {
  return `| ${label} | ${rounds.map((x) => Math.round(x.rps).toLocaleString('en')).join(', ')} | ${Math.round(med(rounds.map((x) => x.rps))).toLocaleString('en')} | ${med(rounds.map((x) => pct(x.lat, 50))).toFixed(3)} | ${med(rounds.map((x) => pct(x.lat, 99))).toFixed(3)} |`;
}

export const RATE_HEADER = ['| condition | requests/s per round | median requests/s | median p50 ms | median p99 ms |', '| --- | --- | ---: | ---: | ---: |'];

/** busy/idle of the median requests/s, with each condition's round-to-round spread. */
export function rateRatio(idle: Rate[], busy: Rate[]): string {
  const ratio = med(busy.map((x) => x.rps)) / med(idle.map((x) => x.rps));
  return `busy/idle: ${(ratio * 100).toFixed(1)}% (round-to-round spread: idle ${(spread(idle.map((x) => x.rps)) * 100).toFixed(1)}%, busy ${(spread(busy.map((x) => x.rps)) * 100).toFixed(1)}%)`;
}
