/**
 * examples/bulk-receiver.ts runs for real: it subscribes to a Mosquitto, a holdfast client with bulk on
 * drains a backlog into it (bulks) and then sends live readings (singles), and the receiver prints
 * every reading, in seq order, and exits by itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { open } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { tempDir } from './helpers.js';

const receiverScript = fileURLToPath(new URL('../examples/bulk-receiver.ts', import.meta.url));
const BACKLOG = 300;
const LIVE = 5;

interface Line {
  event?: string;
  seq?: number;
  bulk?: boolean;
  readings?: number;
  bulks?: number;
}

describe('examples/bulk-receiver.ts', () => {
  let broker: Broker;
  let proxy: LinkProxy;
  const dir = tempDir('bulk-receiver');

  before(async () => {
    broker = await startBroker();
    proxy = await startLinkProxy({ targetPort: broker.port });
  });

  after(async () => {
    await proxy?.close();
    await broker?.close();
    dir.remove();
  });

  it('expands bulks back into readings and exits by itself', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', receiverScript, broker.url, '--topics', 'sensors/#', '--count', String(BACKLOG + LIVE), '--duration', '60'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Line[] = [];
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let onReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as Line;
      lines.push(line);
      if (line.event === 'ready') onReady();
    });
    try {
      await Promise.race([ready, exited.then((code) => Promise.reject(new Error(`receiver exited early (${code}): ${stderr}`)))]);

      // A backlog cached while the link refuses, drained in bulks once it is back; then live singles.
      await proxy.refuse(true);
      const client = await open({ broker: proxy.url, clientId: 'bulk-receiver-device', cacheDir: dir.path, bulk: { maxMessages: 100 }, reconnect: { minMs: 100, maxMs: 300 } });
      const seqs: number[] = [];
      try {
        for (let n = 1; n <= BACKLOG; n++) seqs.push(client.publish('sensors/bulk-receiver-device/temperature', JSON.stringify({ n })));
        await client.flush();
        await proxy.refuse(false);
        await client.drained();
        for (let n = 1; n <= LIVE; n++) {
          seqs.push(client.publish('sensors/bulk-receiver-device/temperature', JSON.stringify({ n: BACKLOG + n })));
          await client.drained();
        }
      } finally {
        await client.close();
      }

      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 30_000)))]);
      clearTimeout(timer);
      assert.equal(code, 0, `receiver exit ${String(code)}: ${stderr}`);
      const readings = lines.filter((l) => l.event === undefined);
      assert.deepEqual(readings.map((l) => l.seq), seqs);
      assert.ok(readings.some((l) => l.bulk === true), 'the backlog must have arrived in bulks');
      assert.ok(readings.some((l) => l.bulk === false), 'live readings arrive one by one');
      const done = lines.at(-1);
      assert.equal(done?.event, 'done');
      assert.equal(done?.readings, BACKLOG + LIVE);
      assert.ok((done?.bulks ?? 0) >= 1 && (done?.bulks ?? 0) < BACKLOG);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
