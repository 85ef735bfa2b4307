export interface BrokerOptions {
  /**
   * Mosquitto: `persistence true` in the broker's temp dir, saved every second and on stop(),
   * so retained messages and persistent sessions survive restart().
   * Aedes fallback: ignored. Its state is in the child's memory only and is lost on
   * stop/kill/restart; tests that need persistence should check `broker.kind`.
   * Default false.
   */
  persistence?: boolean;
  /**
   * Extra mosquitto.conf lines appended after the generated ones, e.g.
   * 'message_size_limit 1000'. Ignored by the Aedes fallback (a note is logged).
   */
  extraConfig?: string[];
  /**
   * Throw instead of falling back to Aedes when no mosquitto binary is found.
   * Default: `process.env.HOLDFAST_REQUIRE_MOSQUITTO === '1'` (unless forceAedes is set).
   */
  requireMosquitto?: boolean;
  /** Use the Aedes fallback even when mosquitto is installed (to test the fallback). */
  forceAedes?: boolean;
  /** Where notes such as "mosquitto not found, using embedded Aedes" go. Default console.warn. */
  log?: (line: string) => void;
}

/**
 * A real MQTT broker in a child process on 127.0.0.1. The child does not keep the Node
 * event loop alive and is SIGKILLed if the parent exits without closing it.
 */
export interface Broker {
  readonly kind: 'mosquitto' | 'aedes';
  /** MQTT protocol levels the broker accepts: mosquitto [3, 4, 5]; Aedes 1.2.0 [3, 4]. */
  readonly protocolVersions: readonly number[];
  readonly host: '127.0.0.1';
  readonly port: number;
  /** mqtt://127.0.0.1:<port> */
  readonly url: string;
  /** Temp dir holding the config, the persistence db and the log. Removed by close(). */
  readonly dir: string;
  /** Pid of the running broker process, undefined while stopped. */
  readonly pid: number | undefined;
  /** Graceful SIGTERM (mosquitto saves persistence); resolves when the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL, as in a power cut; resolves when the process has exited. */
  kill(): Promise<void>;
  /** SIGSTOP: the broker hangs; the kernel still completes TCP handshakes. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start again on the same port and dir after stop()/kill(); resolves once it accepts TCP. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** Kill if running (continuing it first if paused) and remove the temp dir. Idempotent. */
  close(): Promise<void>;
}
