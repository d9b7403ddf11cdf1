/**
 * Newline framing with a hard cap: a line longer than `maxBytes` is dropped as it
 * streams in (never kept whole), and reported once. The consumer can hold the framer
 * between two lines (`line` returns false): the rest of the chunk waits, unparsed, until
 * `resume()`, so a peer cannot start more work than its consumer accepts.
 */
export interface FramerEvents {
  /** One complete line (without its newline); return false to hold the lines after it. */
  line(line: Buffer): boolean | void;
  /** Called once when a line exceeds the cap; the framer then discards input until reset. */
  overflow(): void;
}

export class LineFramer {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  /** Input received while held, not yet split into lines. */
  private held: Buffer[] = [];

  constructor(
    private readonly maxBytes: number,
    private readonly on: FramerEvents,
  ) {}

  /** Feed a chunk; emits every complete line in order, until the consumer holds the framer. */
  push(chunk: Buffer): void {
    if (this.overflowed) return;
    if (this.held.length > 0) {
      this.held.push(chunk);
      return;
    }
    this.split(chunk);
  }

  /** True while lines wait for `resume()`. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Emits the lines held back, until the consumer holds the framer again. */
  resume(): void {
    while (this.held.length > 0 && !this.overflowed) {
      const chunk = this.held.shift()!;
      if (!this.split(chunk)) return;
    }
  }

  /** Emits the lines of a chunk; false when the consumer held the framer (or it overflowed). */
  private split(chunk: Buffer): boolean {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.size + piece.length > this.maxBytes) return this.fail();
      let line: Buffer;
      if (this.parts.length === 0) line = piece;
      else {
        this.parts.push(piece);
        line = Buffer.concat(this.parts, this.size + piece.length);
        this.parts = [];
        this.size = 0;
      }
      start = nl + 1;
      const more = this.on.line(line);
      if (this.overflowed) return false;
      if (more === false) {
        if (start < chunk.length) this.held.unshift(chunk.subarray(start));
        return false;
      }
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.size + rest.length > this.maxBytes) return this.fail();
      // Copy: the caller may reuse its buffer.
      this.parts.push(Buffer.from(rest));
      this.size += rest.length;
    }
    return true;
  }

  /** Takes what is held of an unterminated line (at end of input), or null. Call only when not holding. */
  takeRest(): Buffer | null {
    if (this.overflowed || this.size === 0) return null;
    const rest = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return rest;
  }

  /** Bytes held for an unfinished line and for lines not yet emitted. */
  get buffered(): number {
    return this.size + this.held.reduce((n, b) => n + b.length, 0);
  }

  private fail(): false {
    this.overflowed = true;
    this.parts = [];
    this.size = 0;
    this.held = [];
    this.on.overflow();
    return false;
  }
}
