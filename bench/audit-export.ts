/**
 * The audit export of a real tuxsec-server (TLS, SQLite): 10 000 entries of about 8 KiB each (the
 * largest params stored), exported as JSON, JSON lines and CSV by a client reading at full speed.
 * Prints a markdown table of the export's size, time to first byte, total time and the server's
 * peak RSS during the export above its RSS before (Linux: /proc/<pid>/clear_refs resets the peak).
 *
 *   npm run build && node --import tsx bench/audit-export.ts [entries]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { seedAudit } from '../test/helpers/audit.ts';
import { startServer } from '../test/helpers/server.ts';

const ENTRIES = Number(process.argv[2] ?? 10_000);
const PAD = 8000;

const srv = await startServer({ config: { log_level: 'warn' } });
const dispatcher = new Agent({ connect: { ca: readFileSync(srv.certs.ca) } });
try {
  seedAudit(path.join(srv.dir, 'server.db'), ENTRIES, PAD);
  const pid = srv.proc.pid!;
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  console.log(`## audit export: ${ENTRIES} entries of ~${PAD} bytes of params\n`);
  console.log('| format | bytes | first byte ms | total ms | server peak RSS above before, MiB |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const format of ['json', 'jsonl', 'csv', 'json', 'jsonl', 'csv']) {
    const before = kib('VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const t = performance.now();
    const res = await request(`${srv.url}/api/v1/audit?format=${format}&limit=${Math.min(ENTRIES, 10_000)}`, { dispatcher, headers: { authorization: `Bearer ${srv.adminToken}` } });
    if (res.statusCode !== 200) throw new Error(`export failed: ${res.statusCode} ${await res.body.text()}`);
    let first = 0;
    let bytes = 0;
    for await (const chunk of res.body) {
      if (bytes === 0) first = performance.now() - t;
      bytes += (chunk as Buffer).length;
    }
    const total = performance.now() - t;
    console.log(`| ${format} | ${bytes} | ${first.toFixed(0)} | ${total.toFixed(0)} | ${((kib('VmHWM') - before) / 1024).toFixed(1)} |`);
  }
} finally {
  await dispatcher.close();
  await srv.stop();
  srv.cleanup();
}
