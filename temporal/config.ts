// The configuration of a process that reaches Temporal: lib/'s (the TTD_* variables) and the connection profile (a
// Temporal CLI profile and TEMPORAL_* variables, read by @temporalio/envconfig), which lib/ knows nothing of.
import { loadConfig, type Config } from '../lib/config';
import { loadTemporalProfile, type TemporalProfile } from './profile';
import { checkedBuildId, checkedDeploymentName } from './versioning';

/** A ttd process's configuration with the server it connects to. */
export interface TemporalConfig extends Config {
  /** The server ttd connects to (a Temporal CLI profile and TEMPORAL_* variables: temporal/profile.ts). */
  temporal: TemporalProfile;
  /** The profile's address (TEMPORAL_ADDRESS or `address` of the profile); undefined means the embedded server. */
  temporalAddress: string | undefined;
  temporalNamespace: string;
  /** The Temporal UI's base URL for links in reports (TTD_TEMPORAL_UI; the background dev server's UI by default). */
  temporalUi: string | undefined;
  /** TTD_DEPLOYMENT_NAME: the Worker Deployment workers join; unset, named after the queues (temporal/versioning.ts). */
  deploymentName: string | undefined;
  /** TTD_BUILD_ID: the build id workers join it with; unset, derived from the code (temporal/versioning.ts). */
  buildId: string | undefined;
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
    deploymentName: checkedDeploymentName(env.TTD_DEPLOYMENT_NAME || undefined),
    buildId: checkedBuildId(env.TTD_BUILD_ID || undefined),
  };
}

/** The Temporal address commands talk to: the profile's (TEMPORAL_ADDRESS or a profile file), else the embedded server's. */
export function serverAddress(config: TemporalConfig): string {
  return config.temporalAddress ?? `127.0.0.1:${config.temporalPort}`;
}
