import type { Cache } from './cache.js';
import type { DoneRecords } from './records-table.js';
import type { CacheWriter } from './cache-writer.js';
import type { Progress, ProgressFile } from './progress-file.js';

/** Delivered records leave the cache in one transaction per this many exchanges, or per REMOVE_EVERY_MS. */
const REMOVE_EVERY_EXCHANGES = 256;
const REMOVE_EVERY_MS = 1000;

/**
 * What is delivered, at one small durable write per exchange. Readings go out in seq order, one
 * exchange at a time, so "delivered" is a floor: every cached reading at or below it is done. Before a
 * PUBREL goes out, the floor and the exchange's packet id go to the progress file (fdatasync). The
 * delivered records then leave the cache in batches, a transaction per few hundred, which is what
 * keeps a one-at-a-time drain at one flush per reading: after a power cut the startup removes what
 * the floor covers, and resends the last PUBREL.
 *
 * Requeued dead letters break "in seq order": they come back below the floor. While any is pending,
 * the floor stops below the lowest of them, and delivered records are removed one exchange at a time
 * (a floor that cannot cover them cannot be what removes them after a crash). Every progress write
 * waits for the removals and dead letters issued before it, so the file never claims more than the
 * cache can show after a crash.
 */
export class DeliveryLedger {
  readonly #file: ProgressFile;
  readonly #cache: Cache;
  readonly #writer: CacheWriter;
  /** The highest last seq of a completed exchange (the drain reads after it). */
  #delivered: number;
  /** The floor the cache has had removed through (committed); 0 at start, so the first removal sweeps. */
  #removedThrough = 0;
  #sinceRemoval = 0;
  #removalTimer: NodeJS.Timeout | undefined;
  /** Requeued dead letters (the `requeued` table: they survive a restart), not yet sent again. */
  readonly #requeued: Set<number>;
  readonly #keepRequeued = (seq: number): boolean => this.#requeued.has(seq);
  /** Writes (removals, dead letters) a later progress write must not overtake. */
  readonly #pending = new Set<Promise<void>>();

  constructor(file: ProgressFile, cache: Cache, writer: CacheWriter) {
    this.#file = file;
    this.#cache = cache;
    this.#writer = writer;
    this.#delivered = file.current.floor;
    this.#requeued = new Set(cache.requeued.list());
  }

  /** What the cache may take out before it evicts anything pending: the durable floor's records. */
  get done(): DoneRecords {
    return { through: this.#floorFor(0), keep: this.#keepRequeued };
  }

  /** What the last run left: the floor, and the PUBREL that may still await its PUBCOMP. */
  get recovered(): Progress {
    return this.#file.current;
  }

  /** The drain reads records after this seq (and the requeued ones, below it). */
  get deliveredFloor(): number {
    return this.#delivered;
  }

  /** Requeued readings below the floor, oldest first: they go out before anything else in the cache. */
  get requeuedPending(): number[] {
    return [...this.#requeued].sort((a, b) => a - b);
  }

  /**
   * The PUBREC of an exchange arrived: record, durably, that it and everything before it is done,
   * before the PUBREL goes out.
   */
  recordPubrec(messageId: number, firstSeq: number, lastSeq: number): Promise<void> {
    return this.#afterPending().then(() => this.#file.write({ floor: this.#floorFor(lastSeq), pubrel: { messageId, firstSeq, lastSeq } }));
  }

  /**
   * A QoS 1 exchange of cached records was acknowledged: there is no PUBREL to wait for, so the floor
   * is written on its way (at least once: a crash before it lands resends the exchange).
   */
  recordAck(lastSeq: number): void {
    this.#guard(this.#afterPending().then(() => this.#file.write({ floor: this.#floorFor(lastSeq), pubrel: this.#file.current.pubrel })));
  }

  /** An exchange of cached records completed (PUBCOMP, or PUBACK at QoS 1). */
  completed(seqs: readonly number[], recs: Parameters<CacheWriter['remove']>[0]): void {
    const lastSeq = seqs[seqs.length - 1] ?? 0;
    const requeuedHere = this.#requeued.size > 0 ? seqs.filter((seq) => this.#requeued.delete(seq)) : [];
    if (lastSeq > this.#delivered) this.#delivered = lastSeq;
    if (requeuedHere.length > 0 || this.#requeued.size > 0 || lastSeq < this.#removedThrough) {
      // The floor cannot cover these: remove them now, and let the next progress write wait for it.
      this.#guard(this.#writer.remove(recs, requeuedHere.length > 0 ? () => this.#cache.requeued.removeInTxn(requeuedHere) : undefined));
      return;
    }
    if (++this.#sinceRemoval >= REMOVE_EVERY_EXCHANGES) this.removeDeliveredSoon();
    else this.#removalTimer ??= setTimeout(() => this.removeDeliveredSoon(), REMOVE_EVERY_MS).unref();
  }

  /** A dead letter was written: no progress write may overtake it (it would cover the record). */
  guard(write: Promise<void>): void {
    this.#guard(write);
  }

  /** Takes the delivered records out of the cache now (one transaction). */
  removeDelivered(): Promise<void> {
    clearTimeout(this.#removalTimer);
    this.#removalTimer = undefined;
    this.#sinceRemoval = 0;
    const through = Math.min(this.#delivered, this.#file.current.floor);
    // A QoS 1 floor is written on its way: what it does not cover yet goes with a later batch.
    if (this.#delivered > through) this.#removalTimer = setTimeout(() => this.removeDeliveredSoon(), REMOVE_EVERY_MS).unref();
    if (through <= this.#removedThrough) return Promise.resolve();
    const removal = this.#cache.removeThrough(through, this.#keepRequeued).then(() => {
      this.#removedThrough = Math.max(this.#removedThrough, through);
    });
    this.#writer.track(removal);
    // Not guarded: it removes only what the progress file already covers, so the next progress write
    // (which holds up a PUBREL) need not wait for it; on a slow card a removal is two flushes.
    return removal;
  }

  /**
   * removeDelivered() with nobody waiting: a removal the disk refuses is the writer's disk-full
   * recovery's (it tracks it), never an unhandled rejection, which would end the worker.
   */
  removeDeliveredSoon(): void {
    this.removeDelivered().catch(() => undefined);
  }

  /** Whether delivered records still wait in the cache for their batched removal. */
  get removalPending(): boolean {
    return Math.min(this.#delivered, this.#file.current.floor) > this.#removedThrough;
  }

  /**
   * Moves dead letters (all, or these seqs) back into the cache with their old seqs; resolves with how
   * many. First everything the floor covers leaves the cache, and the floor stops below them.
   */
  async requeueDeadLetters(seqs: readonly number[] | undefined): Promise<number> {
    await this.#cache.settled();
    const recs = this.#cache.dead.takeForRequeue(seqs);
    if (recs.length === 0) return 0;
    await this.removeDelivered();
    for (const rec of recs) this.#requeued.add(rec.seq);
    await this.#writer.requeue(recs, () => {
      this.#cache.dead.removeInTxn(recs);
      this.#cache.requeued.putInTxn(recs);
    });
    return recs.length;
  }

  /** Requeued readings no longer in the cache (evicted, or refused again): nothing to hold the floor for. */
  forgetRequeued(seqs: readonly number[]): void {
    for (const seq of seqs) this.#requeued.delete(seq);
  }

  /** Whether a seq is a requeued dead letter not yet sent again. */
  isRequeued(seq: number): boolean {
    return this.#requeued.has(seq);
  }

  /** At start: what the floor covers, and the exchange whose PUBREL the last run may have sent, leave the cache. */
  sweepAtStart(): Promise<void> {
    const { floor, pubrel } = this.#file.current;
    const ranges: Array<[number, number]> = [[1, floor]];
    if (pubrel) ranges.push([pubrel.firstSeq, pubrel.lastSeq]);
    const sweep = this.#cache.removeRanges(ranges, this.#keepRequeued).then(() => {
      this.#removedThrough = floor;
    });
    this.#writer.track(sweep);
    return sweep;
  }

  /**
   * A clean close with nothing in flight: the last PUBREL was answered, so the next start need not
   * resend it (a broker would answer 0x92, and a test's held PUBCOMP would meet it first).
   */
  async closeCleanly(): Promise<void> {
    await this.removeDelivered();
    const current = this.#file.current;
    if (current.pubrel) await this.#afterPending().then(() => this.#file.write({ floor: current.floor, pubrel: undefined }));
  }

  stop(): void {
    clearTimeout(this.#removalTimer);
    this.#removalTimer = undefined;
  }

  #floorFor(lastSeq: number): number {
    let floor = Math.max(lastSeq, this.#file.current.floor);
    for (const seq of this.#requeued) if (seq <= floor) floor = seq - 1;
    return floor;
  }

  #guard(write: Promise<void>): void {
    const settled: Promise<void> = write.then(
      () => void this.#pending.delete(settled),
      () => void this.#pending.delete(settled),
    );
    this.#pending.add(settled);
  }

  #afterPending(): Promise<void> {
    return this.#pending.size === 0 ? Promise.resolve() : Promise.all([...this.#pending]).then(() => undefined);
  }
}
