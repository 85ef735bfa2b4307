import type { Ballast } from './ballast.js';
import type { Cache, Eviction } from './cache.js';
import { DiskFullRecovery } from './disk-full.js';
import type { Rec } from './record.js';

export interface CacheWriterHooks {
  /** Seqs that must never be evicted (the exchange in flight). */
  isProtected(seq: number): boolean;
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
  readonly #uncommitted: Array<{ minSeq: number; maxSeq: number }> = [];
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
      recovered: () => hooks.recovered(),
      append: (recs, then) => this.#appendNow(recs, undefined, then),
      remove: (recs, alsoInTxn) => this.remove(recs, alsoInTxn),
      appendsPending: () => this.#uncommitted.length > 0,
    });
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
    const span = { minSeq: recs[0]?.seq ?? Infinity, maxSeq: recs[recs.length - 1]?.seq ?? -Infinity };
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
    return this.#cache.append(recs, alsoInTxn, this.#isProtected, markEvicting).then(
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

  /** Removes delivered records; if the disk refuses, they are remembered so they are never resent. */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): void {
    this.#pendingWrites++;
    for (const rec of recs) this.#removing.add(rec.seq);
    const settled = (): void => {
      for (const rec of recs) this.#removing.delete(rec.seq);
      this.#pendingWrites--;
    };
    this.#cache.remove(recs, alsoInTxn).then(
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

  /** The lowest seq written but not yet durable (Infinity when none). */
  get lowestVolatileSeq(): number {
    let lowest = this.#recovery.overflowHead?.seq ?? Infinity;
    for (const span of this.#uncommitted) if (span.minSeq < lowest) lowest = span.minSeq;
    return lowest;
  }

  /** Whether a transaction not yet committed is evicting this seq. */
  isEvicting(seq: number): boolean {
    return this.#evicting.has(seq);
  }

  /**
   * Whether a transaction that adds or evicts records is pending. The drain must not read meanwhile:
   * reads see the last commit, so it could send a record that the pending transaction evicts, or
   * overtake an older record still on its way in.
   */
  get reshaping(): boolean {
    return this.#uncommitted.length > 0 || this.#recovery.evicting || this.#evicting.size > 0;
  }

  get idle(): boolean {
    return this.#uncommitted.length === 0 && this.#pendingWrites === 0 && this.#recovery.idle;
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

  /** Delivered records still in the cache (their removal waits for space): the drain skips them. */
  get unremovedSeqs(): ReadonlySet<number> | undefined {
    return this.#recovery.unremovedSeqs;
  }

  /** Records delivered (or refused) while still waiting for disk space leave the overflow. */
  forget(recs: readonly Rec[]): void {
    this.#recovery.forget(recs);
  }

  /** When the oldest pending record waits for disk space, it is sent from memory. */
  takeOverflowHead(): Rec | undefined {
    return this.#recovery.takeHead();
  }

  stop(): void {
    this.#recovery.stop();
  }
}
