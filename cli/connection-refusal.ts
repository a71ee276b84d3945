// Why a Temporal server refused a connection, when it did: credentials, a client certificate, the server's own
// certificate, TLS against a plaintext server, or a peer that is not a Temporal server at all. These never heal by
// retrying, so they fail at once.
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { usesTls, type TemporalProfile } from '../temporal/profile';

// gRPC status codes (the client's ServiceError carries them in `cause.code`).
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;

/** The refusal `err` reports, as a server_auth_failed (or config_invalid) error naming the address and the setting to
 * change; undefined when `err` is anything else (a server not up yet: the caller retries). */
export function refusal(err: unknown, profile: TemporalProfile, address: string): TtdError | undefined {
  const text = describe(err);
  const code = grpcCode(err);
  const at = `the Temporal server at ${address}`;
  const detail = `(${short(text)})`;
  const fail = (message: string) => new TtdError(ErrorCode.serverAuthFailed, message, { address });

  if (code === UNAUTHENTICATED || /\b401 Unauthorized\b|\bUnauthenticated\b|valid authentication credentials/i.test(text)) {
    return fail(
      profile.origin.api_key
        ? `${at} refused the API key of ${profile.origin.api_key} ${detail}; expected a key the server accepts (check it has not expired or been revoked)`
        : `${at} asks for credentials and none were given ${detail}; set TEMPORAL_API_KEY, or api_key in the profile`,
    );
  }
  if (code === PERMISSION_DENIED || /\b403 Forbidden\b|PermissionDenied|PERMISSION_DENIED/.test(text)) {
    return fail(
      `${at} refused the request as not permitted ${detail}; expected credentials (${credentials(profile)}) allowed on namespace '${profile.namespace}'`,
    );
  }
  const clientCertRefused =
    /alert\W*(certificate required|bad certificate|unknown ca|access denied|CertificateRequired|BadCertificate|UnknownCA|AccessDenied)/i.test(
      text,
    ) ||
    // nginx and other TLS fronts answer HTTP 400 to a missing or untrusted client certificate.
    (usesTls(profile) && /\b400 Bad Request\b|HTTP status code 400\b/.test(text));
  if (clientCertRefused) {
    return fail(
      profile.origin['tls.client_cert']
        ? `${at} refused the client certificate of ${profile.origin['tls.client_cert']} ${detail}; expected a certificate signed by a CA the server trusts, with its key (${profile.origin['tls.client_key']})`
        : `${at} demands a client certificate (mutual TLS) and none was given ${detail}; set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or tls.client_cert_path and tls.client_key_path in the profile`,
    );
  }
  const untrusted =
    /InvalidCertificate\((\w+)/.exec(text) ?? /certificate verify failed|self[- ]signed certificate|unable to get local issuer/i.exec(text);
  if (untrusted) {
    const reason = untrusted[1] ?? untrusted[0];
    if (/NotValidForName/.test(reason)) {
      const presented = /presented: \[([^\]]*)\]/
        .exec(text)?.[1]
        ?.replace(/\\?"/g, '')
        .replace(/DnsName\(|IpAddress\(|\)/g, '');
      const name = profile.origin['tls.server_name']
        ? `the name '${profile.settings.tls?.serverName}' of ${profile.origin['tls.server_name']}`
        : `'${address.replace(/:\d+$/, '')}'`;
      return fail(
        `the TLS certificate of ${at} is not for ${name}${presented ? ` (it holds ${presented})` : ''} ${detail}; ` +
          `set TEMPORAL_TLS_SERVER_NAME (or tls.server_name in the profile) to a name the certificate holds`,
      );
    }
    return fail(
      `ttd does not trust the TLS certificate of ${at} ${detail}; ` +
        (profile.origin['tls.server_ca_cert']
          ? `expected it to be signed by the CA of ${profile.origin['tls.server_ca_cert']}`
          : `set TEMPORAL_TLS_SERVER_CA_CERT_PATH (or tls.server_ca_cert_path in the profile) to the CA that signed it`),
    );
  }
  if (usesTls(profile) && /InvalidContentType|wrong version number|packet length too long/i.test(text)) {
    const why = profile.origin.tls ?? `${profile.origin.api_key}, whose API key implies TLS`;
    return new TtdError(
      ErrorCode.configInvalid,
      `${at} does not speak TLS, but TLS is on (${why}) ${detail}; expected the server's TLS endpoint, or TEMPORAL_TLS=false for a plaintext one`,
      { address },
    );
  }
  // A plaintext HTTP/2 handshake the peer broke off: it speaks something else (HTTP/1, SSH, ...) or only TLS. This never
  // heals by retrying either: a Temporal server, even one starting, answers gRPC or refuses the connection.
  if (!usesTls(profile) && /h2 protocol error|http2 error|FRAME_SIZE_ERROR/.test(text)) {
    return new TtdError(
      ErrorCode.serverUnreachable,
      `the server at ${address} answers, but not as Temporal (h2 protocol error${/FRAME_SIZE_ERROR/.test(text) ? ': FRAME_SIZE_ERROR' : ''}): another program (an HTTP server?) holds that port, or the server expects TLS; expected Temporal's gRPC frontend there: point TEMPORAL_ADDRESS (or TTD_TEMPORAL_PORT, for the embedded server) at it, or set TEMPORAL_TLS=true for a TLS one`,
      { address },
    );
  }
  return undefined;
}

/** What credentials the profile gives, for messages. */
function credentials(profile: TemporalProfile): string {
  const given = [
    profile.origin.api_key && `the API key of ${profile.origin.api_key}`,
    profile.origin['tls.client_cert'] && `the client certificate of ${profile.origin['tls.client_cert']}`,
  ].filter(Boolean);
  return given.length ? given.join(' and ') : 'none were given';
}

function grpcCode(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 4; e = e instanceof Error ? e.cause : undefined, depth++)
    parts.push(e instanceof Error ? e.message : String(e));
  return parts.join(': ');
}

/** The transport's own words, cut short: the HTTP status a TLS front answered, or the TLS library's error name. */
function short(text: string): string {
  const status = /status: (\d{3} [A-Za-z ]+)/.exec(text)?.[1];
  if (status) return `HTTP ${status.trim()}`;
  const tls = /(InvalidCertificate|InvalidMessage|AlertReceived)\((\w+)/.exec(text);
  if (tls) return `${tls[1]}(${tls[2]})`;
  return text.split('\n')[0].replace(/\s+/g, ' ').slice(0, 200);
}
