import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clockCheck, clockSkew, MAX_CLOCK_SKEW_S } from '../../../src/cli/doctor-tls.ts';
import { renderText } from '../../../src/cli/doctor-report.ts';

// The real test of the server's Date header is test/cli/doctor.test.ts; a skew cannot be made
// there without changing this machine's clock, so the arithmetic is tested here with given times.
describe('clockSkew', () => {
  const sent = Date.parse('2026-03-01T12:00:00.000Z');

  it('clockSkew reads a server ahead of us as positive, behind as negative', () => {
    assert.equal(clockSkew('Sun, 01 Mar 2026 12:02:00 GMT', sent, sent), 120.5);
    assert.equal(clockSkew('Sun, 01 Mar 2026 11:58:00 GMT', sent, sent), -119.5);
  });

  it('clockSkew compares the middle of the Date second with the middle of the exchange', () => {
    // Stamped at 12:00:00.something during a 400 ms exchange that began at 11:59:59.900.
    assert.equal(clockSkew('Sun, 01 Mar 2026 12:00:00 GMT', sent - 100, sent + 300), 0.4);
  });

  it('clockSkew is null for a missing or unreadable header', () => {
    assert.equal(clockSkew(undefined, sent, sent), null);
    assert.equal(clockSkew('yesterday-ish', sent, sent), null);
  });

  it('clockCheck passes within the limit and fails past it with the time-sync fix', () => {
    assert.equal(clockCheck(MAX_CLOCK_SKEW_S - 1).ok, true);
    const ahead = clockCheck(-(MAX_CLOCK_SKEW_S + 30));
    assert.equal(ahead.ok, false);
    assert.match(ahead.detail, /^this host's clock is 90\.0 s ahead of the server's/);
    assert.match(ahead.fix!, /timedatectl set-ntp true/);
    assert.match(clockCheck(3600).detail, /3600\.0 s behind/);
  });
});

describe('renderText', () => {
  it('renderText tags each check, puts the fix under a failure and counts skipped apart', () => {
    const text = renderText([
      { name: 'a', ok: true, detail: 'fine', fix: null },
      { name: 'bbb', ok: false, detail: 'broken', fix: 'mend it' },
      { name: 'c', ok: null, detail: 'skipped: cannot', fix: null },
    ]);
    assert.equal(text, 'ok    a    fine\nFAIL  bbb  broken\n      fix: mend it\nskip  c    skipped: cannot\n\n3 checks: 1 passed, 1 failed, 1 skipped\n');
  });
});
