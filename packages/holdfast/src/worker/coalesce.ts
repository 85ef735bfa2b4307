import { Socket } from 'node:net';

interface Chunk {
  chunk: Buffer | string;
  encoding: BufferEncoding;
}
type Callback = (err?: Error | null) => void;
/** The Writable implementation methods net.Socket has (its @types declare them loosely). */
interface PatchableSocket {
  _writev(chunks: Chunk[], cb: Callback): void;
  _write(chunk: Buffer, encoding: 'buffer', cb: Callback): void;
}

/**
 * mqtt-packet writes a packet as many small chunks between cork() and an uncork() on the next tick:
 * a PUBLISH carrying holdfast's user property is 12 of them, four of them strings. The socket turns
 * that into one writev() with as many iovecs, each string encoded on its own, which costs the worker
 * more CPU per message than building the packet did. Copying the chunks into one buffer first keeps
 * the bytes and their order exactly as MQTT.js wrote them, in one write. Plain TCP and TLS sockets
 * only; any other stream (a SOCKS proxy) is left as it is.
 */
export function coalesceWrites(stream: unknown): void {
  if (!(stream instanceof Socket) || Object.hasOwn(stream, '_writev')) return;
  const socket = stream as unknown as PatchableSocket;
  const writev = socket._writev;
  socket._writev = function (this: PatchableSocket, chunks: Chunk[], cb: Callback): void {
    if (chunks.length < 2) return writev.call(this, chunks, cb);
    let size = 0;
    for (const { chunk, encoding } of chunks) size += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
    const joined = Buffer.allocUnsafe(size);
    let offset = 0;
    for (const { chunk, encoding } of chunks) offset += typeof chunk === 'string' ? joined.write(chunk, offset, encoding) : chunk.copy(joined, offset);
    this._write(joined, 'buffer', cb);
  };
}
