import type { Ballast } from './ballast.js';
import type { Cache, Eviction } from './cache.js';
import type { Rec } from './record.js';

/** How long to wait before trying a full disk again. */
const DISK_FULL_RETRY_MS = 1000;
/**
 * Records waiting for space go back to the cache in transactions of about this size: a backlog bigger
 * than the free space must not be all-or-nothing, or it could never be written again.
 */
const OVERFLOW_CHUNK_BYTES = 64 * 1024;

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
 * flush() knows the lowest seq not yet durable; drained() knows when no write is pending; and when the
 * disk is full, records the cache refused wait in memory (in order, newer input behind them) while
 * space is freed by priority eviction, so the client degrades instead of crashing or losing order.
 */
export class CacheWriter {
  /** Appends issued but not yet committed, oldest first. */
  readonly #uncommitted: Array<{ minSeq: number; maxSeq: number }> = [];
  /** Records refused by a full disk, oldest first, waiting for space. */
  readonly #overflow: Rec[] = [];
  /**
   * Delivered records whose removal failed (deleting needs free pages too): never read them again,
   * and remove them once there is space.
   */
  readonly #unremoved = new Map<number, Rec>();
  #pendingWrites = 0;
  #pendingEvictions = 0;
  #failing = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #cache: Cache;
  readonly #hooks: CacheWriterHooks;
  readonly #maxOverflow: number;

  /**
   * Delivered, with the removal still pending: an eviction transaction queued before the removal runs
   * after the delivery, and must not count these as evicted.
   */
  readonly #removing = new Set<number>();

  /** In flight, or delivered and only waiting to be removed: never evicted (or counted as such). */
  readonly #isProtected = (seq: number): boolean => this.#unremoved.has(seq) || this.#removing.has(seq) || this.#hooks.isProtected(seq);

  readonly #ballast: Ballast;

  constructor(cache: Cache, ballast: Ballast, maxOverflow: number, hooks: CacheWriterHooks) {
    this.#cache = cache;
    this.#ballast = ballast;
    this.#maxOverflow = maxOverflow;
    this.#hooks = hooks;
  }

  /** Appends records behind everything written so far (one transaction, evicting to the limits). */
  append(recs: Rec[], alsoInTxn?: () => void): void {
    if (recs.length === 0) {
      if (alsoInTxn) this.track(this.#cache.write(alsoInTxn));
      return;
    }
    if (this.#overflow.length > 0) {
      // Order: nothing may overtake records still waiting for disk space.
      for (const rec of recs) this.#overflow.push(rec);
      this.#boundOverflow();
      if (alsoInTxn) this.track(this.#cache.write(alsoInTxn));
      return;
    }
    this.#appendNow(recs, alsoInTxn);
  }

  #appendNow(recs: Rec[], alsoInTxn?: () => void, then?: () => void): void {
    const span = { minSeq: recs[0]!.seq, maxSeq: recs[recs.length - 1]!.seq };
    this.#uncommitted.push(span);
    this.#cache.append(recs, alsoInTxn, this.#isProtected).then(
      (eviction) => {
        this.#uncommitted.splice(this.#uncommitted.indexOf(span), 1);
        if (eviction.messages > 0) this.#hooks.evicted(eviction);
        then?.();
        this.#maybeRecovered();
        this.#hooks.committed();
      },
      (err: unknown) => {
        this.#uncommitted.splice(this.#uncommitted.indexOf(span), 1);
        for (const rec of recs) this.#overflow.push(rec);
        this.#overflow.sort((a, b) => a.seq - b.seq);
        this.#boundOverflow();
        this.#fail(err);
      },
    );
  }

  /** Removes delivered records; if the disk refuses, they are remembered so they are never resent. */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): void {
    this.#pendingWrites++;
    for (const rec of recs) this.#removing.add(rec.seq);
    const settled = (): void => {
      for (const rec of recs) this.#removing.delete(rec.seq);
    };
    this.#cache.remove(recs, alsoInTxn).then(
      () => {
        settled();
        this.#pendingWrites--;
        this.#maybeRecovered();
        this.#hooks.committed();
      },
      (err: unknown) => {
        settled();
        this.#pendingWrites--;
        for (const rec of recs) this.#unremoved.set(rec.seq, rec);
        this.#fail(err);
      },
    );
  }

  /** Seqs the drain must skip: delivered, but still in the cache because the disk was full. */
  get delivered(): ReadonlySet<number> {
    return new Set(this.#unremoved.keys());
  }

  get hasUnremoved(): boolean {
    return this.#unremoved.size > 0;
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
        this.#fail(err);
      },
    );
  }

  /** The lowest seq written but not yet durable (Infinity when none). */
  get lowestVolatileSeq(): number {
    return Math.min(this.#uncommitted[0]?.minSeq ?? Infinity, this.#overflow[0]?.seq ?? Infinity);
  }

  /**
   * Whether a transaction that adds or evicts records is pending. The drain must not read meanwhile:
   * reads see the last commit, so it could send a record that the pending transaction evicts.
   */
  get reshaping(): boolean {
    return this.#uncommitted.length > 0 || this.#pendingEvictions > 0;
  }

  get idle(): boolean {
    return this.#uncommitted.length === 0 && this.#pendingWrites === 0 && this.#pendingEvictions === 0 && this.#overflow.length === 0 && this.#unremoved.size === 0;
  }

  get overflowLength(): number {
    return this.#overflow.length;
  }

  /**
   * Records delivered (or refused) while still waiting for disk space must leave the overflow, or they
   * would be sent again: a spill whose write failed holds the exchange that was in flight.
   */
  forget(recs: readonly Rec[]): void {
    if (this.#overflow.length === 0) return;
    const done = new Set(recs.map((r) => r.seq));
    for (let i = this.#overflow.length - 1; i >= 0; i--) if (done.has(this.#overflow[i]!.seq)) this.#overflow.splice(i, 1);
  }

  /** When the cache is empty but records wait for disk space, they are sent from memory. */
  takeOverflowHead(): Rec | undefined {
    return this.#overflow.shift();
  }

  /** Bounded memory while the disk is full: evict from the overflow too, lowest priority first. */
  #boundOverflow(): void {
    const excess = this.#overflow.length - this.#maxOverflow;
    if (excess <= 0) return;
    const eviction: Eviction = { messages: 0, bytes: 0, byPriority: new Array<number>(10).fill(0) };
    for (let priority = 1; priority <= 10 && eviction.messages < excess; priority++) {
      for (let i = 0; i < this.#overflow.length && eviction.messages < excess; ) {
        const rec = this.#overflow[i]!;
        if (rec.priority !== priority || this.#hooks.isProtected(rec.seq)) {
          i++;
          continue;
        }
        this.#overflow.splice(i, 1);
        eviction.messages++;
        eviction.bytes += rec.size;
        eviction.byPriority[priority - 1]! += 1;
      }
    }
    this.#hooks.evicted(eviction);
  }

  /** Writes the records waiting for space, oldest first, one chunk per transaction. */
  #writeOverflow(): void {
    if (this.#overflow.length === 0) return this.#maybeRecovered();
    let bytes = 0;
    let count = 0;
    while (count < this.#overflow.length && (count === 0 || bytes + this.#overflow[count]!.size <= OVERFLOW_CHUNK_BYTES)) bytes += this.#overflow[count++]!.size;
    // Newer appends keep joining the overflow behind these until it is empty, so order holds.
    this.#appendNow(this.#overflow.splice(0, count), undefined, () => this.#writeOverflow());
  }

  /** Writes succeed again and nothing waits for space: healthy, with the reserve put back. */
  #maybeRecovered(): void {
    if (!this.#failing || this.#overflow.length > 0 || this.#unremoved.size > 0 || this.#uncommitted.length > 0) return;
    this.#failing = false;
    this.#ballast.restore();
    this.#hooks.recovered();
  }

  #fail(err: unknown): void {
    const first = !this.#failing;
    this.#failing = true;
    // Give LMDB room to delete and evict; an empty disk partition would otherwise stay stuck.
    if (first) this.#ballast.release();
    this.#hooks.failed(err, first);
    // After stop() (close), a failed write stays failed: the cache is about to close under a retry.
    if (this.#retryTimer === undefined && !this.#stopped) this.#retryTimer = setTimeout(() => this.#retry(), DISK_FULL_RETRY_MS);
  }

  /** Frees space by priority eviction, then writes the waiting records again, in order. */
  #retry(): void {
    this.#retryTimer = undefined;
    const waiting = this.#overflow.length;
    // Room for what waits, plus headroom (a tenth of the cache) for the writes that must follow it:
    // the in-flight packet's commit and removals. Evicting only what waits would let the re-append
    // take all the freed space every time and nothing else ever commit.
    const room = waiting + Math.max(16, Math.ceil(this.#cache.messages / 10));
    this.#pendingEvictions++;
    this.#cache.evict(room, this.#isProtected).then(
      (eviction) => {
        this.#pendingEvictions--;
        if (eviction.messages > 0) this.#hooks.evicted(eviction);
        if (this.#unremoved.size > 0) {
          const unremoved = [...this.#unremoved.values()];
          this.#unremoved.clear();
          this.remove(unremoved);
        }
        this.#writeOverflow();
      },
      (err: unknown) => {
        this.#pendingEvictions--;
        this.#fail(err);
      },
    );
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
