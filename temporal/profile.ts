// The Temporal connection as the Temporal CLI and SDKs configure it: a TOML profile (TEMPORAL_CONFIG_FILE,
// TEMPORAL_PROFILE) overridden by TEMPORAL_* variables, read by the SDK's own @temporalio/envconfig.
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/client';
import { ErrorCode, TtdError } from '../lib/contract/errors';

/** The settings a profile can give, as messages name them. */
export type TemporalSetting =
  'address' | 'namespace' | 'api_key' | 'tls' | 'tls.client_cert' | 'tls.client_key' | 'tls.server_ca_cert' | 'tls.server_name';

/** The variables that set each setting (the first wins over the profile file; *_PATH and *_DATA are both read). */
const VARIABLES: Record<TemporalSetting, string[]> = {
  address: ['TEMPORAL_ADDRESS'],
  namespace: ['TEMPORAL_NAMESPACE'],
  api_key: ['TEMPORAL_API_KEY'],
  tls: ['TEMPORAL_TLS'],
  'tls.client_cert': ['TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_DATA'],
  'tls.client_key': ['TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_CLIENT_KEY_DATA'],
  'tls.server_ca_cert': ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_SERVER_CA_CERT_DATA'],
  'tls.server_name': ['TEMPORAL_TLS_SERVER_NAME'],
};

/** The connection settings of one process, with where each came from (for messages). */
export interface TemporalProfile {
  /** host:port of the server; undefined when nothing names one (the embedded dev server is used). */
  address: string | undefined;
  namespace: string;
  /** The settings as @temporalio/envconfig read them; certificate files are read when connecting. */
  settings: ClientConfigProfile;
  /** The profile file read, when there was one. */
  file: string | undefined;
  /** The profile's name (TEMPORAL_PROFILE, else `default`). */
  profile: string;
  /** For each setting given: the variable that set it, or `KEY of profile 'NAME' in FILE`. */
  origin: Partial<Record<TemporalSetting, string>>;
}

/** Reads the profile and variables from `env`; a missing TEMPORAL_CONFIG_FILE, a file that is not TOML or has
 * unknown keys, or a TEMPORAL_PROFILE the file lacks is a config_invalid error naming the file and the profile. */
export function loadTemporalProfile(env: NodeJS.ProcessEnv): TemporalProfile {
  // An empty variable is an unset one, as TEMPORAL_ADDRESS='' always was (gRPC metadata keeps '' = remove the header).
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (v !== '' || k.startsWith('TEMPORAL_GRPC_META_'))) vars[k] = v;
  const explicitFile = vars.TEMPORAL_CONFIG_FILE;
  const file = explicitFile ?? defaultConfigFile(vars);
  const fileLabel = explicitFile ? `TEMPORAL_CONFIG_FILE '${explicitFile}'` : `the Temporal CLI's config file '${file}'`;
  const fileExists = file !== undefined && isFile(file);
  if (explicitFile && !fileExists) {
    throw new TtdError(
      ErrorCode.configInvalid,
      `TEMPORAL_CONFIG_FILE='${explicitFile}' ${describeMissing(explicitFile)}; expected a TOML file of Temporal CLI profiles ([profile.NAME] tables)`,
      { file: explicitFile },
    );
  }
  const profileName = vars.TEMPORAL_PROFILE ?? 'default';
  let settings: ClientConfigProfile;
  try {
    settings = loadClientConfigProfile({ overrideEnvVars: vars, configFileStrict: true });
  } catch (err) {
    const message = (err as Error).message;
    if (/^Profile '.*' not found/.test(message)) {
      const known = fileExists ? Object.keys(loadClientConfig({ overrideEnvVars: vars }).profiles) : [];
      throw new TtdError(
        ErrorCode.configInvalid,
        `TEMPORAL_PROFILE='${profileName}': ` +
          (fileExists
            ? `${fileLabel} has no profile '${profileName}'; expected one of: ${known.length ? known.map((n) => `'${n}'`).join(', ') : 'none (the file defines no profiles)'}`
            : `there is no profile file (${fileLabel} does not exist); expected TEMPORAL_CONFIG_FILE naming a file with [profile.${profileName}]`),
        { file, profile: profileName },
      );
    }
    throw new TtdError(
      ErrorCode.configInvalid,
      `${fileLabel} cannot be used (profile '${profileName}'): ${firstLine(message)}${where(err)}; expected Temporal CLI profiles with the keys ` +
        `address, namespace, api_key, grpc_meta and tls (client_cert_path, client_key_path, server_ca_cert_path, server_name, disabled, and their *_data forms)`,
      { file, profile: profileName },
    );
  }
  const inFile = fileExists ? `of profile '${profileName}' in ${file}` : undefined;
  const origin: Partial<Record<TemporalSetting, string>> = {};
  for (const setting of Object.keys(VARIABLES) as TemporalSetting[]) {
    if (!hasSetting(settings, setting)) continue;
    const variable = VARIABLES[setting].find((name) => vars[name] !== undefined);
    origin[setting] = variable ?? `${fileKey(setting, settings)} ${inFile ?? ''}`.trim();
  }
  return {
    address: settings.address,
    namespace: settings.namespace ?? 'default',
    settings,
    file: fileExists ? file : undefined,
    profile: profileName,
    origin,
  };
}

/** The options Connection.connect and NativeConnection.connect share. */
export interface TemporalConnectOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** What Connection.connect and NativeConnection.connect take, certificate files read and checked: a file that is
 * missing, unreadable or not PEM, or a certificate without its key, is a config_invalid error naming the setting. */
export function temporalConnectOptions(profile: TemporalProfile, address: string): TemporalConnectOptions {
  const tls = profile.settings.tls;
  if (tls && !tls.disabled) {
    const checked = {
      ...tls,
      clientCert: pem(profile, 'tls.client_cert', tls.clientCert, 'the client certificate'),
      clientKey: pem(profile, 'tls.client_key', tls.clientKey, "the client certificate's private key"),
      serverCACert: pem(profile, 'tls.server_ca_cert', tls.serverCACert, "the CA certificate that signed the server's certificate"),
    };
    if (Boolean(checked.clientCert) !== Boolean(checked.clientKey)) {
      const [has, lacks]: TemporalSetting[] = checked.clientCert
        ? ['tls.client_cert', 'tls.client_key']
        : ['tls.client_key', 'tls.client_cert'];
      throw new TtdError(
        ErrorCode.configInvalid,
        `${profile.origin[has]} gives a ${has === 'tls.client_cert' ? 'client certificate without its key' : 'client key without its certificate'}; ` +
          `expected both: set ${VARIABLES[lacks][0]} too, or ${lacks}_path in the profile`,
      );
    }
    const { connectionOptions } = toClientOptions({ ...profile.settings, address, tls: checked });
    return clean(connectionOptions);
  }
  return clean(toClientOptions({ ...profile.settings, address }).connectionOptions);
}

/** Whether the connection uses TLS (a tls section or TEMPORAL_TLS=true, or an API key, which implies it). */
export function usesTls(profile: TemporalProfile): boolean {
  const tls = profile.settings.tls;
  if (tls) return !tls.disabled;
  return profile.settings.apiKey !== undefined;
}

/** The options without unset keys (the SDK's option checks treat a present undefined as given). */
function clean(o: ReturnType<typeof toClientOptions>['connectionOptions']): TemporalConnectOptions {
  return {
    address: o.address as string,
    ...(o.tls !== undefined && o.tls !== null ? { tls: o.tls } : {}),
    ...(typeof o.apiKey === 'string' ? { apiKey: o.apiKey } : {}),
    ...(o.metadata ? { metadata: o.metadata as Record<string, string> } : {}), // grpc_meta: strings only
  };
}

/** A certificate or key source checked: a path that exists, is readable and holds PEM; inline data that is PEM. */
function pem(profile: TemporalProfile, setting: TemporalSetting, source: ConfigDataSource | undefined, what: string) {
  if (source === undefined) return undefined;
  const where = profile.origin[setting] ?? setting;
  let text: string;
  if ('path' in source) {
    try {
      text = readFileSync(source.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TtdError(
        ErrorCode.configInvalid,
        `${where} names '${source.path}', which ${code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? (err as Error).message})`}; expected the PEM file of ${what}`,
        { setting, file: source.path },
      );
    }
  } else {
    text = typeof source.data === 'string' ? source.data : Buffer.from(source.data).toString('utf8');
  }
  if (!text.includes('-----BEGIN ')) {
    throw new TtdError(
      ErrorCode.configInvalid,
      `${where}${'path' in source ? ` ('${source.path}')` : ''} is not PEM (no '-----BEGIN' line); expected ${what} in PEM form`,
      { setting },
    );
  }
  return source;
}

function hasSetting(s: ClientConfigProfile, setting: TemporalSetting): boolean {
  switch (setting) {
    case 'address':
      return s.address !== undefined;
    case 'namespace':
      return s.namespace !== undefined;
    case 'api_key':
      return s.apiKey !== undefined;
    case 'tls':
      return s.tls !== undefined;
    case 'tls.client_cert':
      return s.tls?.clientCert !== undefined;
    case 'tls.client_key':
      return s.tls?.clientKey !== undefined;
    case 'tls.server_ca_cert':
      return s.tls?.serverCACert !== undefined;
    case 'tls.server_name':
      return s.tls?.serverName !== undefined;
  }
}

/** The TOML key a setting came from (`tls.client_cert_path` or `tls.client_cert_data`). */
function fileKey(setting: TemporalSetting, s: ClientConfigProfile): string {
  const source = { 'tls.client_cert': s.tls?.clientCert, 'tls.client_key': s.tls?.clientKey, 'tls.server_ca_cert': s.tls?.serverCACert }[
    setting as 'tls.client_cert'
  ];
  if (source) return `${setting}_${'path' in source ? 'path' : 'data'}`;
  return setting;
}

/** Where the Temporal CLI looks when TEMPORAL_CONFIG_FILE is unset (Linux): $XDG_CONFIG_HOME or ~/.config, then
 * temporalio/temporal.toml. Used for messages; envconfig itself reads the same file. */
function defaultConfigFile(vars: Record<string, string>): string | undefined {
  const xdg = vars.XDG_CONFIG_HOME;
  if (xdg) return isAbsolute(xdg) ? join(xdg, 'temporalio', 'temporal.toml') : undefined;
  return vars.HOME ? join(vars.HOME, '.config', 'temporalio', 'temporal.toml') : undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function describeMissing(path: string): string {
  try {
    return statSync(path).isDirectory() ? 'is a directory' : 'is not a regular file';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
  }
}

/** ` at line L, column C` of a TOML syntax error (smol-toml's TomlError), else nothing. */
function where(err: unknown): string {
  const { line, column } = err as { line?: unknown; column?: unknown };
  return typeof line === 'number' ? ` at line ${line}${typeof column === 'number' ? `, column ${column}` : ''}` : '';
}

function firstLine(text: string): string {
  return text.split('\n')[0].slice(0, 300);
}
