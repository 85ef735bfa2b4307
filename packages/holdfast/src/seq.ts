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
      throw new HoldfastError(ErrorCodes.SEQ_EXHAUSTED, 'no seq epoch is reserved yet; the worker has not answered in time');
    }
    this.#epoch = this.#nextEpoch;
    this.#nextEpoch = undefined;
    this.#requested = false;
    this.#counter = 1;
  }
}
