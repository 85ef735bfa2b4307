/**
 * A single status line rewritten in place on a terminal. Messages printed through `note()` appear
 * above it, so the line is never torn.
 */
export class StatusLine {
  readonly #stream: NodeJS.WriteStream;
  #shown = false;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  update(text: string): void {
    const width = this.#stream.columns > 10 ? this.#stream.columns - 1 : 119;
    this.#stream.write(`\r\x1b[2K${text.length > width ? text.slice(0, width) : text}`);
    this.#shown = true;
  }

  note(text: string): void {
    this.#stream.write(this.#shown ? `\r\x1b[2K${text}\n` : `${text}\n`);
    this.#shown = false;
  }

  /** Leaves the last status on screen and moves below it. */
  end(): void {
    if (this.#shown) this.#stream.write('\n');
    this.#shown = false;
  }
}
