/**
 * Per-uid counting, for the limits that are per caller (connections, operations).
 */

/** Counts held per uid; a uid whose count drops to zero is forgotten. */
export class UidCounts {
  private readonly byUid = new Map<number, number>();
  total = 0;

  get(uid: number): number {
    return this.byUid.get(uid) ?? 0;
  }

  add(uid: number): void {
    this.byUid.set(uid, this.get(uid) + 1);
    this.total++;
  }

  remove(uid: number): void {
    this.total--;
    const n = (this.byUid.get(uid) ?? 1) - 1;
    if (n <= 0) this.byUid.delete(uid);
    else this.byUid.set(uid, n);
  }
}
