/**
 * Finds MQTT packet boundaries in a byte stream that arrives in arbitrary chunks, so the link proxy
 * can act on one packet (drop, duplicate, delay or hold it) without parsing payloads. A frame is one
 * fixed-header byte (type in the high nibble), a 1–4 byte varint remaining length, then that many bytes.
 */
export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
} as const;

export type PacketName = keyof typeof PacketType;

/** Where the splitter sends what it cuts. */
export interface FrameSink {
  /** Bytes of a frame streamed on as they arrive; `endsFrame` when they finish it. */
  pass(bytes: Buffer, endsFrame: boolean): void;
  /** A complete frame whose type `wantWhole` asked for, header included. */
  whole(frame: Buffer, type: number): void;
}

export class FrameSplitter {
  #inFrame = false;
  /** The current frame is gathered whole rather than streamed. */
  #gathering = false;
  #type = 0;
  #lengthBytes = 0;
  #length = 0;
  #lengthDone = false;
  /** Body bytes of the current frame still to come, once its length is known. */
  #remaining = 0;
  /** Earlier chunks' pieces of the frame being gathered. */
  #parts: Buffer[] = [];

  /**
   * @param wantWhole Asked at the first byte of every frame: gather this frame whole (true) or stream
   *   it through (false). Streaming passes bytes on at once, so a non-MQTT byte stream is never held.
   */
  constructor(private readonly wantWhole: (type: number) => boolean) {}

  /** True between frames: a frame inserted now cannot land inside another. */
  get atBoundary(): boolean {
    return !this.#inFrame;
  }

  push(chunk: Buffer, sink: FrameSink): void {
    let i = 0;
    // Start of this chunk's bytes not yet handed on; a frame always starts at it.
    let from = 0;
    while (i < chunk.length) {
      if (!this.#inFrame) {
        this.#inFrame = true;
        this.#type = chunk[i]! >> 4;
        this.#gathering = this.wantWhole(this.#type);
        this.#lengthBytes = 0;
        this.#length = 0;
        this.#lengthDone = false;
        i++;
        continue;
      }
      if (!this.#lengthDone) {
        const b = chunk[i++]!;
        this.#length += (b & 0x7f) * 128 ** this.#lengthBytes++;
        if ((b & 0x80) !== 0 && this.#lengthBytes < 4) continue;
        this.#lengthDone = true;
        this.#remaining = this.#length;
      } else {
        const take = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= take;
        i += take;
      }
      if (this.#remaining > 0) continue;
      this.#inFrame = false;
      if (this.#gathering) {
        this.#parts.push(chunk.subarray(from, i));
        const frame = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
        this.#parts = [];
        sink.whole(frame, this.#type);
      } else {
        sink.pass(chunk.subarray(from, i), true);
      }
      from = i;
    }
    if (from === chunk.length) return;
    if (this.#gathering) this.#parts.push(chunk.subarray(from));
    else sink.pass(chunk.subarray(from), false);
  }
}

/** The topic of a complete PUBLISH frame, or undefined (a topic alias with an empty topic, or garbage). */
export function publishTopic(frame: Buffer): string | undefined {
  let i = 1;
  while (i < frame.length && i < 5 && (frame[i]! & 0x80) !== 0) i++;
  i++;
  if (i + 2 > frame.length) return undefined;
  const length = frame.readUInt16BE(i);
  if (length === 0 || i + 2 + length > frame.length) return undefined;
  return frame.toString('utf8', i + 2, i + 2 + length);
}

/** MQTT topic filter matching: `+` one level, `#` the rest (including the parent level). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let k = 0; k < f.length; k++) {
    if (f[k] === '#') return k === f.length - 1;
    if (k >= t.length) return false;
    if (f[k] !== '+' && f[k] !== t[k]) return false;
  }
  return f.length === t.length;
}
