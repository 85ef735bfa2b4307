import type { HoldfastError } from './errors.js';
import type { ClientState, FromWorker, WorkerReady } from './protocol.js';

export type SupervisionEventName = 'worker-restart' | 'worker-failed';

/** The facade side of the supervisor: it hears what the worker says and what supervision decides. */
export interface SupervisorHost {
  /** Every worker message but replies (settled here) and ready. */
  message(msg: FromWorker): void;
  state(state: ClientState): void;
  event(name: SupervisionEventName, data: Record<string, unknown>): void;
  error(err: HoldfastError): void;
}

/**
 * What supervision tells the facade, in order. Everything is held until release(): the app attaches
 * its listeners only in its continuation of `await open()`, and the start's 'draining' and
 * 'drain-start' come before that.
 */
export class HostRelay {
  #host: SupervisorHost | undefined;
  #held: Array<(host: SupervisorHost) => void> | undefined = [];

  attach(host: SupervisorHost): void {
    this.#host = host;
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const tell of held) tell(this.#host!);
  }

  tell(tell: (host: SupervisorHost) => void): void {
    if (this.#held) this.#held.push(tell);
    else if (this.#host) tell(this.#host);
  }

  /** The worker died and is being restarted. */
  crashed(crash: HoldfastError): void {
    this.tell((host) => host.state('restarting'));
    this.tell((host) => host.error(crash));
  }

  /** A replacement worker is ready, in `state`. */
  resumed(ready: WorkerReady, state: ClientState): void {
    // Its epoch is reserved and unused: the next one the facade's seqs move to.
    this.tell((host) => host.message({ type: 'epoch', epoch: ready.epoch }));
    if (ready.quarantined) this.tell((host) => host.message({ type: 'event', name: 'quarantine', data: { ...ready.quarantined } }));
    this.tell((host) => host.state(state));
  }

  /** No worker could be restarted: the client is 'failed' for good. */
  failed(failure: HoldfastError, data: Record<string, unknown>): void {
    this.tell((host) => {
      host.state('failed');
      host.event('worker-failed', data);
      host.error(failure);
    });
  }
}
