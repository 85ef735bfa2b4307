/**
 * The suite's default reporter: node's spec reporter, with the one piece of expected noise it cannot
 * keep out labelled where it appears. liblmdb reports a failed write from C (`fprintf(stderr, "Write
 * error: …")`, no newline), which no JavaScript can catch: the disk-full tests cause it on purpose.
 * Plain JavaScript: node loads reporters before tsx's loader is in place.
 */
import { Readable } from 'node:stream';
import { spec } from 'node:test/reporters';

const LMDB_WRITE_ERROR = /Write error: No space left on device position \d+, size \d+/g;

/** @param {AsyncIterable<{ type: string, data: { message?: unknown } }>} source */
async function* labelled(source) {
  for await (const event of source) {
    const message = event.data?.message;
    if (event.type === 'test:stderr' && typeof message === 'string' && message.includes('Write error: ')) {
      yield { ...event, data: { ...event.data, message: message.replace(LMDB_WRITE_ERROR, (line, at) => `(expected: liblmdb on the test's full disk) ${line}${at + line.length < message.length ? '\n' : ''}`) } };
    } else {
      yield event;
    }
  }
}

/** @param {AsyncIterable<{ type: string, data: { message?: unknown } }>} source */
export default async function* labelledSpec(source) {
  yield* Readable.from(labelled(source)).pipe(new spec());
}
