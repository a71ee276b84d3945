// The configuration of a process that reaches Temporal: lib/'s (the TTD_* variables) and the connection profile (a
// Temporal CLI profile and TEMPORAL_* variables, read by @temporalio/envconfig), which lib/ knows nothing of.
import { loadConfig, type Config } from '../lib/config';
import { loadTemporalProfile, type TemporalProfile } from './profile';

/** A ttd process's configuration with the server it connects to. */
export interface TemporalConfig extends Config {
  /** The server ttd connects to (a Temporal CLI profile and TEMPORAL_* variables: temporal/profile.ts). */
  temporal: TemporalProfile;
  /** The profile's address (TEMPORAL_ADDRESS or `address` of the profile); undefined means the embedded server. */
  temporalAddress: string | undefined;
  temporalNamespace: string;
  /** The Temporal UI's base URL for links in reports (TTD_TEMPORAL_UI; the background dev server's UI by default). */
  temporalUi: string | undefined;
}

/** Reads the configuration and the connection profile from `env` (process.env by default). */
export function loadTemporalConfig(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  const config = loadConfig(env);
  const temporal = loadTemporalProfile(env);
  return {
    ...config,
    temporal,
    temporalAddress: temporal.address,
    temporalNamespace: temporal.namespace,
    temporalUi:
      (env.TTD_TEMPORAL_UI ?? (temporal.address ? '' : `http://127.0.0.1:${config.temporalPort + 1000}`)).replace(/\/+$/, '') || undefined,
  };
}

/** The Temporal address commands talk to: the profile's (TEMPORAL_ADDRESS or a profile file), else the embedded server's. */
export function serverAddress(config: TemporalConfig): string {
  return config.temporalAddress ?? `127.0.0.1:${config.temporalPort}`;
}
