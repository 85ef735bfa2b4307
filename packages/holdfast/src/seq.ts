import { ErrorCodes, HoldfastError } from './errors.js';
import { EPOCH_SPAN, MAX_EPOCH } from './protocol.js';

/**
 * Hands out seqs on the app thread with no I/O. The worker durably reserves an epoch per open();
 * seq = epoch·2^32 + counter, so seqs never repeat across restarts, and a gap inside one epoch is a
 * real loss (the auditor relies on that). Halfway through an epoch the next one is requested, long
 * before it is needed.
 */
export class SeqAllocator {
  #epoch: number;
  #counter = 0;
  #nextEpoch: number | undefined;
  #requested = false;
  readonly #requestEpoch: () => void;

  constructor(epoch: number, requestEpoch: () => void) {
    this.#epoch = epoch;
    this.#requestEpoch = requestEpoch;
  }

  next(): number {
    if (this.#epoch > MAX_EPOCH) throw epochsUsedUp();
    if (++this.#counter >= EPOCH_SPAN) this.#rollOver();
    else if (this.#counter === EPOCH_SPAN / 2 && !this.#requested) {
      this.#requested = true;
      this.#requestEpoch();
    }
    return this.#epoch * EPOCH_SPAN + this.#counter;
  }

  /** The last seq next() gave was not used (its reading was refused): it is given again. */
  giveBack(): void {
    if (this.#counter > 0) this.#counter--;
  }

  /** The worker's answer to requestEpoch(). */
  offerEpoch(epoch: number): void {
    this.#nextEpoch = epoch;
  }

  #rollOver(): void {
    if (this.#nextEpoch === undefined || this.#nextEpoch > MAX_EPOCH) {
      this.#counter--;
      if (this.#nextEpoch !== undefined) throw epochsUsedUp();
      throw new HoldfastError(ErrorCodes.SEQ_EXHAUSTED, 'no seq epoch is reserved yet; the worker has not answered in time');
    }
    this.#epoch = this.#nextEpoch;
    this.#nextEpoch = undefined;
    this.#requested = false;
    this.#counter = 1;
  }
}

/**
 * Past MAX_EPOCH a seq is no longer a safe integer. The client still opens, so what the cache holds is
 * delivered; only new readings are refused. A new cacheDir alone would start the epochs again and
 * repeat seqs a receiver has seen under this clientId, hence the advice.
 */
export function epochsUsedUp(): HoldfastError {
  return new HoldfastError(
    ErrorCodes.SEQ_EXHAUSTED,
    `this cacheDir has used all ${MAX_EPOCH.toLocaleString('en-US')} seq epochs (one per open() and per worker restart): it accepts no new readings, and still delivers what it holds (await drained()); continue under a new clientId with a new cacheDir`,
  );
}
