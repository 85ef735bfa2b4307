/** What kind of failure a connection error is, so operators see the cause, not OpenSSL's text. */
export type ConnectionErrorKind = 'tls' | 'auth' | 'network' | 'protocol';

export interface ConnectionErrorInfo {
  kind: ConnectionErrorKind;
  /** A readable cause; the raw message follows it. Never contains credentials. */
  message: string;
  code: string | number | undefined;
}

const TLS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: "the broker's certificate is not signed by tls.ca",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the broker's certificate is self-signed and not trusted (tls.ca)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the broker's certificate is not signed by tls.ca",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the broker's certificate is not signed by tls.ca",
  CERT_HAS_EXPIRED: "the broker's certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "the broker's certificate does not name this host",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the broker rejected our client certificate: it has expired',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the broker requires a client certificate (tls.cert and tls.key)',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "the broker does not trust our client certificate's CA",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the broker rejected our client certificate',
};

/** CONNACK return codes (3.1.1) and reason codes (5) that mean "fix the credentials". */
const AUTH: Record<number, string> = {
  4: 'bad username or password',
  5: 'not authorized',
  0x86: 'bad username or password',
  0x87: 'not authorized',
  0x8c: 'bad authentication method',
};

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

export function classifyConnectionError(rawMessage: string, code: string | number | undefined): ConnectionErrorInfo {
  if (typeof code === 'string' && TLS[code]) return { kind: 'tls', message: `${TLS[code]} (${rawMessage})`, code };
  if (typeof code === 'number' && AUTH[code]) return { kind: 'auth', message: `connection refused: ${AUTH[code]}`, code };
  if (typeof code === 'string' && (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.includes('CERT'))) {
    return { kind: 'tls', message: `TLS handshake failed (${rawMessage})`, code };
  }
  if (typeof code === 'string' && NETWORK.has(code)) return { kind: 'network', message: rawMessage, code };
  return { kind: 'protocol', message: rawMessage, code };
}
