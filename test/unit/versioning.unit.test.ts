// Worker Deployment naming (temporal/versioning.ts): the deployment named after the queues unless TTD_DEPLOYMENT_NAME
// says otherwise, the build id from the code unless TTD_BUILD_ID does, both checked when the configuration loads.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTemporalConfig } from '../../temporal/config';
import { codeDigest, deploymentName } from '../../temporal/versioning';
import { codeBuildId } from '../../workers/create-workers';
import { repoRoot, tempDir } from '../helpers';

const envOf = (extra: Record<string, string>) => ({ TTD_HOME: tempDir(), ...extra }) as NodeJS.ProcessEnv;

describe('worker deployment versions', () => {
  it('the deployment is named after the store, or after TTD_QUEUE_PREFIX with what Temporal cannot take replaced', () => {
    expect(deploymentName({ kind: 'store', storeId: 'ab12' }, undefined)).toBe('ttd-ab12');
    expect(deploymentName({ kind: 'prefix', prefix: 'team.a/ttd' }, undefined)).toBe('team-a-ttd');
    expect(deploymentName({ kind: 'store', storeId: 'ab12' }, 'ml-platform')).toBe('ml-platform');
  });

  it('TTD_DEPLOYMENT_NAME and TTD_BUILD_ID are checked when the configuration loads, with config_invalid naming the value', () => {
    expect(() => loadTemporalConfig(envOf({ TTD_DEPLOYMENT_NAME: 'ttd.prod' }))).toThrow(
      expect.objectContaining({
        code: 'config_invalid',
        message: expect.stringContaining("TTD_DEPLOYMENT_NAME='ttd.prod' is not a deployment name"),
      }),
    );
    expect(() => loadTemporalConfig(envOf({ TTD_BUILD_ID: '.hidden' }))).toThrow(
      expect.objectContaining({ code: 'config_invalid', message: expect.stringContaining("TTD_BUILD_ID='.hidden' is not a build id") }),
    );
    const config = loadTemporalConfig(envOf({ TTD_BUILD_ID: 'v1.2.3+g1a2b3c', TTD_DEPLOYMENT_NAME: 'ml_platform' }));
    expect([config.buildId, config.deploymentName]).toEqual(['v1.2.3+g1a2b3c', 'ml_platform']);
    expect(codeBuildId(config)).toBe('v1.2.3+g1a2b3c');
  });

  it('the derived build id is the package version and the digest of the workflow code, the same wherever the checkout lies', () => {
    const config = loadTemporalConfig(envOf({}));
    expect(codeBuildId(config)).toMatch(/^\d+\.\d+\.\d+-[0-9a-f]{12}$/);
    const [a, b] = [tempDir(), tempDir()];
    for (const dir of [a, b]) cpSync(join(repoRoot, 'workflows'), join(dir, 'workflows'), { recursive: true });
    expect(codeDigest(a, ['workflows', 'lib'], '.ts')).toBe(codeDigest(b, ['workflows', 'lib'], '.ts'));
    mkdirSync(join(b, 'lib'));
    writeFileSync(join(b, 'lib', 'added.ts'), 'export const x = 1;\n');
    expect(codeDigest(b, ['workflows', 'lib'], '.ts')).not.toBe(codeDigest(a, ['workflows', 'lib'], '.ts'));
  });
});
