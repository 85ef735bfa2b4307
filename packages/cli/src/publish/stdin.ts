import { createInterface } from 'node:readline';
import type { HoldfastClient } from 'holdfast';

/**
 * Publishes one message per line of standard input (empty lines skipped), until end of input or
 * stop(). Resolves with the number of lines published.
 */
export class StdinSource {
  readonly #rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  #published = 0;

  run(client: HoldfastClient, topic: string, priority: number): Promise<number> {
    return new Promise<number>((resolve) => {
      this.#rl.on('line', (line) => {
        if (line.length === 0) return;
        client.publish(topic, line, { priority });
        this.#published++;
      });
      this.#rl.once('close', () => resolve(this.#published));
    });
  }

  stop(): void {
    this.#rl.close();
  }
}
