/**
 * Finds MQTT packet boundaries in a byte stream that arrives in arbitrary chunks, so the link proxy
 * can act at a packet (e.g. hold the stream from the next PUBCOMP on) without parsing payloads.
 * A frame is one fixed-header byte (type in the high nibble), a 1–4 byte varint remaining length,
 * then that many bytes.
 */
export const PacketType = { publish: 3, puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 } as const;

export class FrameScanner {
  /** Bytes of the current frame still to skip. */
  #remaining = 0;
  /** A fixed header split across chunks. */
  #header: number[] = [];

  /** Returns the offset in `chunk` where the first frame of `type` starts, or -1. */
  findFrame(chunk: Buffer, type: number): number {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const skip = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= skip;
        i += skip;
        continue;
      }
      const start = i - this.#header.length;
      this.#header.push(chunk[i]!);
      i++;
      const header = this.#header;
      if (header.length < 2) continue;
      const last = header[header.length - 1]!;
      if ((last & 0x80) !== 0 && header.length < 5) continue;
      let length = 0;
      for (let k = header.length - 1; k >= 1; k--) length = length * 128 + (header[k]! & 0x7f);
      const frameType = header[0]! >> 4;
      this.#header = [];
      this.#remaining = length;
      // A frame whose header began in an earlier chunk is reported at offset 0 of this one.
      if (frameType === type) return Math.max(0, start);
    }
    return -1;
  }

  /** Keeps the scanner in step over bytes that are not searched. */
  skip(chunk: Buffer): void {
    this.findFrame(chunk, -1);
  }
}
