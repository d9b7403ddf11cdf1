/**
 * Newline framing with a hard cap: a line longer than `maxBytes` is dropped as it
 * streams in (never kept whole), and reported once.
 */
export interface FramerEvents {
  line(line: Buffer): void;
  /** Called once when a line exceeds the cap; the framer then discards input until reset. */
  overflow(): void;
}

export class LineFramer {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;

  constructor(
    private readonly maxBytes: number,
    private readonly on: FramerEvents,
  ) {}

  /** Feed a chunk; emits every complete line in order. */
  push(chunk: Buffer): void {
    if (this.overflowed) return;
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
      this.on.line(line);
      if (this.overflowed) return;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.size + rest.length > this.maxBytes) return this.fail();
      // Copy: the caller may reuse its buffer.
      this.parts.push(Buffer.from(rest));
      this.size += rest.length;
    }
  }

  /** Takes what is held of an unterminated line (at end of input), or null. */
  takeRest(): Buffer | null {
    if (this.overflowed || this.size === 0) return null;
    const rest = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return rest;
  }

  /** Bytes held for an unfinished line. */
  get buffered(): number {
    return this.size;
  }

  private fail(): void {
    this.overflowed = true;
    this.parts = [];
    this.size = 0;
    this.on.overflow();
  }
}
