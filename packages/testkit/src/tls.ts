import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LOOPBACK } from './ports.js';

/*
 * Test PKI and broker auth made on the spot with openssl and mosquitto_passwd: a CA, a server
 * certificate for 127.0.0.1/localhost, a client certificate, an expired client certificate and an
 * unrelated CA, plus the mosquitto.conf lines for a TLS listener and a password file.
 */

export interface TlsFiles {
  /** Temp dir holding every file below. Removed by remove(). */
  readonly dir: string;
  /** The CA that signed the server and client certificates. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Signed by `ca`, but its validity ended a day before it began. */
  readonly expiredClientCert: string;
  readonly expiredClientKey: string;
  /** A CA that signed nothing here: trusting only it must fail against the server. */
  readonly wrongCa: string;
  /** A client certificate signed by `wrongCa`, which the broker must refuse. */
  readonly untrustedClientCert: string;
  readonly untrustedClientKey: string;
  /** Contents of one of the files above. */
  read(file: string): Buffer;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** An EC P-256 key and a CSR for `cn` (EC keys generate in milliseconds, RSA in seconds). */
function keyAndCsr(cwd: string, name: string, cn: string): void {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], cwd);
}

function selfSignedCa(cwd: string, name: string, cn: string): void {
  openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`], cwd);
}

function sign(cwd: string, name: string, ca: string, days: number, ext: string): void {
  writeFileSync(path.join(cwd, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', String(days), '-extfile', `${name}.ext`], cwd);
}

const SERVER_EXT = `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:${LOOPBACK},DNS:localhost\n`;
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';

/** Makes the whole test PKI in a fresh temp dir. Needs `openssl` on PATH. */
export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(path.join(tmpdir(), 'holdfast-tls-'));
  try {
    selfSignedCa(dir, 'ca', 'holdfast test CA');
    selfSignedCa(dir, 'wrong-ca', 'some other CA');
    keyAndCsr(dir, 'server', LOOPBACK);
    sign(dir, 'server', 'ca', 2, SERVER_EXT);
    keyAndCsr(dir, 'client', 'holdfast-client');
    sign(dir, 'client', 'ca', 2, CLIENT_EXT);
    keyAndCsr(dir, 'expired', 'holdfast-expired');
    // openssl x509 takes a negative -days: notAfter lands a day before notBefore, so it has expired.
    sign(dir, 'expired', 'ca', -1, CLIENT_EXT);
    keyAndCsr(dir, 'untrusted', 'holdfast-untrusted');
    sign(dir, 'untrusted', 'wrong-ca', 2, CLIENT_EXT);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl failed to make the test certificates${stderr ? `: ${stderr}` : ''}`, { cause: err });
  }
  const at = (file: string): string => path.join(dir, file);
  return {
    dir,
    ca: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    expiredClientCert: at('expired.pem'),
    expiredClientKey: at('expired.key'),
    wrongCa: at('wrong-ca.pem'),
    untrustedClientCert: at('untrusted.pem'),
    untrustedClientKey: at('untrusted.key'),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * mosquitto.conf lines for a TLS listener on `port`, to pass as startBroker's `extraConfig`.
 * With `requireCertificate`, clients must present a certificate signed by the CA (mTLS).
 */
export function tlsListenerConfig(port: number, files: TlsFiles, options: { requireCertificate?: boolean } = {}): string[] {
  return [
    `listener ${port} ${LOOPBACK}`,
    `cafile ${files.ca}`,
    `certfile ${files.serverCert}`,
    `keyfile ${files.serverKey}`,
    `require_certificate ${options.requireCertificate ? 'true' : 'false'}`,
  ];
}

const PASSWD_DIRS = ['/usr/bin', '/usr/local/bin', '/opt/homebrew/bin'];

/** Absolute path of mosquitto_passwd (PATH, then the usual bin dirs), or undefined. */
export function findMosquittoPasswd(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...PASSWD_DIRS]) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'mosquitto_passwd');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Writes a mosquitto password file `<dir>/passwd` for `users` (name → password) with
 * mosquitto_passwd, and returns its path. Add `password_file <path>` to the broker config.
 */
export function mosquittoPasswordFile(dir: string, users: Readonly<Record<string, string>>): string {
  const bin = findMosquittoPasswd();
  if (!bin) throw new Error('mosquitto_passwd not found (it comes with the mosquitto package)');
  const file = path.join(dir, 'passwd');
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    execFileSync(bin, first ? ['-b', '-c', file, user, password] : ['-b', file, user, password], { stdio: 'ignore' });
    first = false;
  }
  return file;
}
