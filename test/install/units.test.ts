/**
 * The shipped systemd units, read by systemd's own analyzer: `systemd-analyze security
 * --offline=true` on each unit file scores its sandbox (0 is the tightest, 10 none at all).
 * Also: every capability and address family a unit keeps is explained in the comment above it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../src/os/exec.ts';
import { ROOT } from '../helpers/rootd.ts';

const UNIT_DIR = path.join(ROOT, 'packaging/systemd');
/** Highest exposure score each service may have. */
const LIMITS: Record<string, number> = {
  'tuxsec-rootd.service': 2.5,
  'tuxsec-agent.service': 1.5,
  'tuxsec-server.service': 1.5,
};

async function exposure(unit: string): Promise<{ score: number; output: string }> {
  const r = await run('/usr/bin/systemd-analyze', ['security', '--offline=true', '--no-pager', path.join(UNIT_DIR, unit)], {
    timeoutMs: 60_000,
    maxOutputBytes: 1024 * 1024,
  });
  const output = `${r.stdout}${r.stderr}`;
  const m = new RegExp(`Overall exposure level for ${unit.replace('.', '\\.')}: (\\d+\\.\\d+)`).exec(output);
  assert.ok(m, `systemd-analyze printed no score for ${unit} (exit ${r.code}):\n${output}`);
  return { score: Number(m[1]), output };
}

/** The comment lines right above the first line starting with `key=`. */
function commentAbove(text: string, key: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${key}=`));
  assert.ok(i >= 0, `no ${key}=`);
  const out: string[] = [];
  for (let j = i - 1; j >= 0 && lines[j]!.startsWith('#'); j--) out.unshift(lines[j]!);
  return out.join('\n');
}

describe('systemd units', () => {
  for (const [unit, limit] of Object.entries(LIMITS)) {
    test(`systemd-analyze security scores ${unit} at ${limit} or less`, async () => {
      const { score, output } = await exposure(unit);
      assert.ok(score <= limit, `${unit} scores ${score}, more than ${limit}:\n${output}`);
    });

    test(`${unit} explains every capability and address family it keeps`, () => {
      const text = readFileSync(path.join(UNIT_DIR, unit), 'utf8');
      for (const key of ['CapabilityBoundingSet', 'RestrictAddressFamilies']) {
        const value = new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
        assert.ok(!value.startsWith('~'), `${unit}: ${key} must list what is kept, not what is dropped`);
        const comment = commentAbove(text, key);
        for (const item of value.split(/\s+/).filter(Boolean)) assert.ok(comment.includes(item), `${unit}: the comment above ${key}= does not say why ${item} is kept`);
      }
    });
  }
});
