import type { Ballast } from './ballast.js';
import type { Cache } from './cache.js';
import { DiskFullRecovery } from './disk-full.js';
import type { Rec } from './record.js';
import type { DoneRecords, Eviction } from './records-table.js';

/**
 * Input that arrives during trouble is appended in one transaction per this window (a synced commit
 * is two flushes: on an SD card, one per reading would leave no flushes for the drain). A spill, a
 * flush() or close() writes at once.
 */
const APPEND_WINDOW_MS = 250;
/** Or as soon as this much is waiting. */
const APPEND_WINDOW_MESSAGES = 4096;

export interface CacheWriterHooks {
  /** Seqs that must never be evicted (the exchange in flight). */
  isProtected(seq: number): boolean;
  /** Delivered records still cached (batched removal): taken out before anything pending is evicted. */
  done(): DoneRecords | undefined;
  /**
   * The lowest seq the sender holds outside the writer (Infinity when none): a record taken from the
   * overflow and in flight from memory, or input queued in memory. No append's watermark may pass it.
   */
  lowestHeldOutside(): number;
  /** A write committed: stats, waiters and the sender may move on. */
  committed(): void;
  evicted(eviction: Eviction): void;
  /** The cache refused a write (disk or map full). `first` is true once per episode. */
  failed(err: unknown, first: boolean): void;
  /** Writes succeed again. */
  recovered(): void;
}

/**
 * Every write the sender makes to the cache goes through here, which keeps three things true:
 * flush() knows the lowest seq not yet durable; drained() knows when no write is pending; and the
 * drain never reads past a record that is still on its way into the cache. A full disk is handed to
 * DiskFullRecovery, which holds what the cache refused until there is room again.
 */
export class CacheWriter {
  /** Appends issued but not yet committed, oldest first. */
  readonly #uncommitted: Array<{ minSeq: number; maxSeq: number; recs: readonly Rec[] }> = [];
  /** Input waiting for the next windowed append (not yet issued), oldest first. */
  #windowed: Rec[] = [];
  #windowTimer: NodeJS.Timeout | undefined;
  /** Seqs a transaction not yet committed is evicting: they must not be sent meanwhile. */
  readonly #evicting = new Set<number>();
  #pendingWrites = 0;
  /**
   * Delivered, with the removal still pending: an eviction transaction queued before the removal runs
   * after the delivery, and must not count these as evicted.
   */
  readonly #removing = new Set<number>();
  readonly #cache: Cache;
  readonly #hooks: CacheWriterHooks;
  readonly #recovery: DiskFullRecovery;

  /** In flight, or delivered and only waiting to be removed: never evicted (or counted as such). */
  readonly #isProtected = (seq: number): boolean => this.#recovery.isUnremoved(seq) || this.#removing.has(seq) || this.#hooks.isProtected(seq);

  constructor(cache: Cache, ballast: Ballast, maxOverflow: number, hooks: CacheWriterHooks) {
    this.#cache = cache;
    this.#hooks = hooks;
    this.#recovery = new DiskFullRecovery(cache, ballast, maxOverflow, {
      isProtected: this.#isProtected,
      evicted: (eviction) => hooks.evicted(eviction),
      failed: (err, first) => hooks.failed(err, first),
      recovered: () => {
        hooks.recovered();
        hooks.committed();
      },
      append: (recs, then) => this.#appendNow(recs, undefined, then),
      remove: (recs, alsoInTxn) => this.remove(recs, alsoInTxn),
      appendsPending: () => this.#uncommitted.length > 0,
      pendingRecords: () => this.#uncommitted.flatMap((span) => span.recs),
      windowed: () => this.#windowed,
      dropWindowed: (seqs) => {
        this.#windowed = this.#windowed.filter((r) => !seqs.has(r.seq));
      },
      done: () => hooks.done(),
      settled: () => hooks.committed(),
    });
  }

  /**
   * Input that arrives during trouble: appended with whatever else arrives within APPEND_WINDOW_MS, in
   * one transaction. Until then it is memory, like spill mode's queue (lowestVolatileSeq counts it).
   */
  appendWindowed(recs: Rec[]): void {
    for (const rec of recs) this.#windowed.push(rec);
    if (this.#windowed.length >= APPEND_WINDOW_MESSAGES) return this.hurry();
    this.#windowTimer ??= setTimeout(() => this.hurry(), APPEND_WINDOW_MS).unref();
  }

  /** Issues the windowed append now (a flush() waits for it, or close(), or the drain reached it). */
  hurry(): void {
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    if (this.#windowed.length === 0) return;
    const recs = this.#windowed;
    this.#windowed = [];
    this.append(recs);
  }

  /** Input not yet issued to the cache: it goes back to memory when the drain is done before it. */
  takeWindowed(): Rec[] {
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const recs = this.#windowed;
    this.#windowed = [];
    return recs;
  }

  /** Whether an append is issued and not yet committed. */
  get appending(): boolean {
    return this.#uncommitted.length > 0;
  }

  /** Appends records behind everything written so far (one transaction, evicting to the limits). */
  append(recs: Rec[], alsoInTxn?: () => void): void {
    if (recs.length === 0) {
      if (alsoInTxn) this.track(this.#cache.write(alsoInTxn));
      return;
    }
    if (this.#recovery.holding) {
      // Order: nothing may overtake records still waiting for disk space.
      this.#recovery.hold(recs);
      if (alsoInTxn) this.track(this.#cache.write(alsoInTxn));
      return;
    }
    this.#appendNow(recs, alsoInTxn);
  }

  /** Dead letters back into the cache, evicting by the same rules (and reports) as any append. */
  requeue(recs: Rec[], alsoInTxn: () => void): Promise<void> {
    return this.#commitAppend(recs, alsoInTxn).then(() => this.#hooks.committed());
  }

  #appendNow(recs: Rec[], alsoInTxn?: () => void, then?: () => void): void {
    this.#commitAppend(recs, alsoInTxn, (err) => this.#recovery.refusedAppend(recs, err)).then(
      () => {
        then?.();
        this.#recovery.maybeRecovered();
        this.#hooks.committed();
      },
      () => undefined,
    );
  }

  /**
   * `refused` takes the records over in the same callback that forgets the failed append, so at no
   * moment are they in neither place (the sender could otherwise send a newer record first).
   */
  #commitAppend(recs: Rec[], alsoInTxn?: () => void, refused?: (err: unknown) => void): Promise<void> {
    const span = { minSeq: recs[0]?.seq ?? Infinity, maxSeq: recs[recs.length - 1]?.seq ?? -Infinity, recs };
    if (recs.length > 0) this.#uncommitted.push(span);
    // What this transaction evicts is marked as it runs, and unmarked once it commits or rolls back.
    const evicting: number[] = [];
    const settle = (): void => {
      if (recs.length > 0) this.#uncommitted.splice(this.#uncommitted.indexOf(span), 1);
      for (const seq of evicting) this.#evicting.delete(seq);
    };
    const markEvicting = (seq: number): void => {
      evicting.push(seq);
      this.#evicting.add(seq);
    };
    // appendedThrough must not pass a reading another write still carries (an older append in flight,
    // the overflow, the window) or the sender still holds (sent from the overflow): after a crash the
    // intake log replays only what is above it.
    const watermarkCap = (): number => {
      let lowest = Math.min(this.#recovery.overflowHead?.seq ?? Infinity, this.#windowed[0]?.seq ?? Infinity, this.#hooks.lowestHeldOutside());
      for (const other of this.#uncommitted) if (other !== span && other.minSeq < lowest) lowest = other.minSeq;
      return lowest - 1;
    };
    return this.#cache.append(recs, { alsoInTxn, isProtected: this.#isProtected, onEvict: markEvicting, done: this.#hooks.done(), watermarkCap }).then(
      (eviction) => {
        settle();
        if (eviction.messages > 0) this.#hooks.evicted(eviction);
      },
      (err: unknown) => {
        refused?.(err);
        settle();
        throw err;
      },
    );
  }

  /**
   * Removes delivered (or dead-lettered) records; if the disk refuses, they are remembered so they are
   * never resent. Resolves when the removal committed, or was taken over by the disk-full recovery.
   */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): Promise<void> {
    this.#pendingWrites++;
    for (const rec of recs) this.#removing.add(rec.seq);
    const settled = (): void => {
      for (const rec of recs) this.#removing.delete(rec.seq);
      this.#pendingWrites--;
    };
    return this.#cache.remove(recs, alsoInTxn).then(
      () => {
        settled();
        this.#recovery.maybeRecovered();
        this.#hooks.committed();
      },
      (err: unknown) => {
        settled();
        this.#recovery.refusedRemoval(recs, alsoInTxn, err);
      },
    );
  }

  /** Counts a write (delete, store update) so drained() waits for it. */
  track(write: Promise<void>): void {
    this.#pendingWrites++;
    write.then(
      () => {
        this.#pendingWrites--;
        this.#hooks.committed();
      },
      (err: unknown) => {
        this.#pendingWrites--;
        this.#recovery.fail(err);
      },
    );
  }

  /** The lowest seq written but not yet durable, or waiting for its windowed append (Infinity when none). */
  get lowestVolatileSeq(): number {
    let lowest = Math.min(this.#recovery.overflowHead?.seq ?? Infinity, this.#windowed[0]?.seq ?? Infinity);
    for (const span of this.#uncommitted) if (span.minSeq < lowest) lowest = span.minSeq;
    return lowest;
  }

  /** Whether a transaction not yet committed is evicting this seq. */
  isEvicting(seq: number): boolean {
    return this.#evicting.has(seq);
  }

  /**
   * Whether the disk-full recovery's eviction is pending: the drain waits for it (it does not mark
   * what it evicts as it runs, as appends do). Appends do not stop the drain: it sends nothing past
   * lowestVolatileSeq, and nothing an append's transaction is evicting (isEvicting).
   */
  get reshaping(): boolean {
    return this.#recovery.evicting;
  }

  get idle(): boolean {
    return this.#uncommitted.length === 0 && this.#windowed.length === 0 && this.#pendingWrites === 0 && this.#recovery.idle;
  }

  /** False while the cache refuses writes (disk or map full). */
  get failing(): boolean {
    return this.#recovery.failing;
  }

  get overflowLength(): number {
    return this.#recovery.overflowLength;
  }

  get overflowHead(): Rec | undefined {
    return this.#recovery.overflowHead;
  }

  /**
   * Records the drain must skip though its read still sees them: their removal (delivered, or moved to
   * the dead letters) is on its way, or waits for disk space.
   */
  get leavingSeqs(): ReadonlySet<number> | undefined {
    const unremoved = this.#recovery.unremovedSeqs;
    if (this.#removing.size === 0) return unremoved;
    if (!unremoved) return this.#removing;
    return new Set([...this.#removing, ...unremoved]);
  }

  /** Counts a removal made outside remove() (unreadable records) so the drain skips those seqs meanwhile. */
  removing(seqs: readonly number[], write: Promise<void>): void {
    for (const seq of seqs) this.#removing.add(seq);
    const settled = (): void => {
      for (const seq of seqs) this.#removing.delete(seq);
    };
    this.track(write.then(settled, (err: unknown) => {
      settled();
      throw err;
    }));
  }

  /** Records delivered (or refused) while still waiting for disk space leave the overflow. */
  forget(recs: readonly Rec[]): void {
    this.#recovery.forget(recs);
  }

  /** When the oldest pending record waits for disk space, it is sent from memory. */
  takeOverflowHead(): Rec | undefined {
    return this.#recovery.takeHead();
  }

  /** close(): writes what waits (windowed input, and for disk space), within the deadline; resolves with what could not be. */
  async stop(deadlineMs: number): Promise<Rec[]> {
    this.hurry();
    const unsaved = await this.#recovery.saveWaiting(deadlineMs);
    this.#recovery.stop();
    return unsaved;
  }
}
