// Declared environments in the spec: the two forms, what a requirement line may hold, the digest that names the
// environment, and uv's failures read as codes. No uv and no network here (test/integration/declared-environment.test.ts
// builds real ones).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { canonicalJson, digestBytes } from '../../lib/store/digest';
import { declaredDigest, declaredId, parseDeclaredId, requirementProblem, uvFailure } from '../../lib/environments/declared-environments';
import { formatIssues, loadSpec, runEnvironmentId, validateSpec } from '../../lib/spec/spec';
import { forEnvironment, loadConfig } from '../../lib/config';
import { torchRelease } from '../../lib/environments/environments';
import { preloadEnv } from '../../activities/torch-process/fork-server';
import { tempDir } from '../helpers';

const BERT = { base: 'torch-2.13', requirements: ['transformers==5.25.0'] };

// A spec file and its model file in a fresh directory; returns the spec's path.
function specFile(spec: Record<string, unknown>, files: Record<string, string> = {}): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'model.py'), 'import torch\n');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, 'pipeline.yaml'), stringify({ name: 'm', model: './model.py', ...spec }));
  return join(dir, 'pipeline.yaml');
}

describe('declared environments', () => {
  it('environment takes a name or { base, requirements }, and a name keeps the digest it always had', () => {
    expect(validateSpec({ name: 'm', environment: 'torch-2.13' }).ok).toBe(true);
    const declared = validateSpec({ name: 'm', environment: BERT });
    expect(declared.ok && declared.spec.environment).toEqual(BERT);
    const byName = loadSpec(specFile({ environment: 'torch-2.13' }));
    const { spec } = byName;
    expect(byName.specDigest).toBe(digestBytes(canonicalJson(spec)));
    expect(byName.declared).toBeUndefined();
    expect(runEnvironmentId(byName, 'torch-2.13')).toBe('torch-2.13');
  });

  it('a declared environment is named by the digest of its base and requirement lines', () => {
    const loaded = loadSpec(specFile({ environment: BERT }));
    expect(loaded.declared).toEqual(BERT);
    const hex = declaredDigest(BERT).slice('sha256:'.length);
    expect(runEnvironmentId(loaded, 'torch-2.13')).toBe(`torch-2.13+${hex}`);
    expect(declaredId(BERT)).toBe(`torch-2.13+${hex}`);
    expect(parseDeclaredId(declaredId(BERT))).toEqual({ base: 'torch-2.13', hex });
    expect(parseDeclaredId('torch-2.13')).toBeUndefined();
    expect(declaredDigest({ ...BERT, requirements: ['transformers==5.24.0'] })).not.toBe(declaredDigest(BERT));
    expect(declaredDigest({ ...BERT, base: 'torch-1.13' })).not.toBe(declaredDigest(BERT));
  });

  it('a requirements file beside the spec gives the same environment as the same list, and its lines make the digest', () => {
    const hash = `--hash=sha256:${'ab'.repeat(32)}`;
    const file = `# pinned for the BERT classifier\ntransformers==5.25.0 \\\n    ${hash}\n\n`;
    const loaded = loadSpec(
      specFile({ environment: { base: 'torch-2.13', requirements: 'requirements.txt' } }, { 'requirements.txt': file }),
    );
    expect(loaded.declared).toEqual({ base: 'torch-2.13', requirements: [`transformers==5.25.0 ${hash}`] });
    const other = loadSpec(
      specFile({ environment: { base: 'torch-2.13', requirements: 'requirements.txt' } }, { 'requirements.txt': 'transformers==5.24.0\n' }),
    );
    expect(other.specDigest).not.toBe(loaded.specDigest);
  });

  it('a requirements file that is missing, empty or holds options other than --hash is spec_invalid naming the file and line', () => {
    const env = { environment: { base: 'torch-2.13', requirements: 'requirements.txt' } };
    expect(() => loadSpec(specFile(env))).toThrow(/environment.requirements: cannot read 'requirements.txt' \(ENOENT\)/);
    expect(() => loadSpec(specFile(env, { 'requirements.txt': '# nothing\n' }))).toThrow(/'requirements.txt' lists no requirement/);
    expect(() => loadSpec(specFile(env, { 'requirements.txt': 'six==1.17.0\n--index-url http://example.invalid/simple\n' }))).toThrow(
      /'requirements.txt' line 2: '--index-url http:\/\/example.invalid\/simple' is an option/,
    );
    expect(() => loadSpec(specFile(env, { 'requirements.txt': '-r other.txt\n' }))).toThrow(/line 1: '-r other.txt' is an option/);
  });

  it('requirement entries that are options, URLs, paths or repeated are refused with the entry named', () => {
    expect(requirementProblem('transformers==5.25.0')).toBeUndefined();
    expect(requirementProblem(`six==1.17.0 --hash=sha256:${'0'.repeat(64)}`)).toBeUndefined();
    expect(requirementProblem('accelerate>=1.0; python_version >= "3.10"')).toBeUndefined();
    const cases: [string, RegExp][] = [
      ['--extra-index-url http://x', /is an option/],
      ['six --index-url http://x', /carries an option other than --hash=/],
      ['https://example.invalid/six.whl', /is a URL or a path/],
      ['six @ https://example.invalid/six.whl', /is a URL or a path/],
      ['./wheels/six.whl', /is a URL or a path/],
      ['', /is empty/],
    ];
    for (const [line, why] of cases) {
      const r = validateSpec({ name: 'm', environment: { base: 'torch-2.13', requirements: [line] } });
      expect(r.ok, line).toBe(false);
      if (!r.ok) expect(formatIssues(r.issues)).toMatch(why);
    }
    const twice = validateSpec({ name: 'm', environment: { base: 'torch-2.13', requirements: ['six', 'six'] } });
    expect(!twice.ok && formatIssues(twice.issues)).toContain(
      'environment.requirements must list each requirement once; "six" appears more than once',
    );
    const none = validateSpec({ name: 'm', environment: { base: 'torch-2.13', requirements: [] } });
    expect(!none.ok && formatIssues(none.issues)).toContain('environment.requirements must name at least one requirement');
    const noBase = validateSpec({ name: 'm', environment: { requirements: ['six'] } });
    expect(!noBase.ok && formatIssues(noBase.issues)).toContain(
      'or { base: torch-2.13, requirements: [transformers==5.25.0] } (got {"requirements":["six"]})',
    );
    const extra = validateSpec({ name: 'm', environment: { ...BERT, index: 'x' } });
    expect(!extra.ok && formatIssues(extra.issues)).toContain("unknown field(s) 'index'");
  });

  it("a declared environment's stages run its own Python over the base's packages and the base's libtorch runner", () => {
    const config = loadConfig({ TTD_HOME: tempDir(), TTD_ENV_CACHE: '/srv/envs' });
    const base = forEnvironment(config, 'torch-2.13')!;
    const hex = declaredDigest(BERT).slice('sha256:'.length);
    const declared = forEnvironment(config, declaredId(BERT))!;
    expect(declared.python).toBe(`/srv/envs/${hex}/venv/bin/python`);
    expect(declared.basePython).toBe(base.python);
    expect(declared.baseEnvironment).toBe('torch-2.13');
    expect(declared.libtorchRunner).toBe(base.libtorchRunner);
    expect(declared.environment).toBe(`torch-2.13+${hex.slice(0, 12)}`);
    expect(forEnvironment(config, `torch-9+${hex}`)).toBeUndefined();
    // Back to an installed environment: no base Python left over.
    expect(forEnvironment(declared, 'torch-1.13')!.basePython).toBeUndefined();
    expect(forEnvironment(declared, 'torch-1.13')!.baseEnvironment).toBeUndefined();
  });

  it("a declared environment's fork server preloads its requirements (their names, as PEP 503 normalizes them); an installed one preloads nothing", () => {
    const cache = tempDir();
    const config = loadConfig({ TTD_HOME: tempDir(), TTD_ENV_CACHE: cache });
    const d = { base: 'torch-2.13', requirements: ['Transformers==5.25.0', 'sentence_piece>=0.2 --hash=sha256:00'] };
    const declared = forEnvironment(config, declaredId(d))!;
    expect(preloadEnv(declared)).toEqual({}); // not built yet: no record to read
    const hex = declaredDigest(d).slice('sha256:'.length);
    mkdirSync(join(cache, hex), { recursive: true });
    const record = {
      format: 'ttd-env/1',
      base: d.base,
      requirements: d.requirements,
      digest: declaredDigest(d),
      torch_version: '2.13.0',
      resolved: [],
      installed: [],
    };
    writeFileSync(join(cache, hex, 'env.json'), JSON.stringify(record));
    expect(JSON.parse(preloadEnv(declared).TTD_TORCH_PRELOAD)).toEqual({ distributions: ['transformers', 'sentence-piece'] });
    expect(JSON.parse(preloadEnv(declared, '/srv/hint/model-imports.py').TTD_TORCH_PRELOAD)).toEqual({
      distributions: ['transformers', 'sentence-piece'],
      imports_of: '/srv/hint/model-imports.py',
    });
    expect(preloadEnv(forEnvironment(config, 'torch-2.13')!, '/srv/hint/model-imports.py')).toEqual({});
  });

  it("uv's failures become codes: another torch is environment_invalid naming the package, a dead index is index_unreachable", () => {
    const viaDependency = uvFailure(
      BERT,
      '2.13.0+cpu',
      'error: No solution found when resolving dependencies\n  cause: Because torchvision==0.29.1 depends on torch>=2.14.0 and torch==2.13.0+cpu, we can conclude that torchvision==0.29.1 cannot be used.\n  And because you require torchvision==0.29.1, we can conclude that your requirements are unsatisfiable.',
      'resolve',
    );
    expect(viaDependency.code).toBe('environment_invalid');
    expect(viaDependency.message).toContain("'torchvision' needs torch>=2.14.0, but environment.base 'torch-2.13' has torch 2.13.0+cpu");
    const direct = uvFailure(
      BERT,
      '2.13.0+cpu',
      'error: No solution found when resolving dependencies\n  cause: Because you require torch>=2.14 and torch==2.13.0+cpu, we can conclude that your requirements are unsatisfiable.',
      'resolve',
    );
    expect(direct.message).toContain("'torch' needs torch>=2.14");
    const offline = uvFailure(
      BERT,
      '2.13.0+cpu',
      'error: Request failed after 3 retries\n  cause: Failed to fetch: http://127.0.0.1:9/simple/transformers/\n  cause: tcp connect error\n  cause: Connection refused (os error 111)',
      'resolve',
    );
    expect(offline.code).toBe('index_unreachable');
    expect(offline.message).toContain('the package index (http://127.0.0.1:9/simple/transformers/) cannot be reached');
    const missing = uvFailure(
      BERT,
      '2.13.0+cpu',
      'error: No solution found when resolving dependencies\n  cause: Because there is no version of transformers==99.0 and you require transformers==99.0, we can conclude that your requirements are unsatisfiable.',
      'resolve',
    );
    expect(missing.code).toBe('environment_invalid');
    expect(missing.message).toContain('environment.requirements [transformers==5.25.0] cannot be resolved');
  });

  it('torch versions match on their release: a local tag or a pre-release suffix does not make a mismatch', () => {
    expect(torchRelease('2.13.0+cpu')).toBe('2.13.0');
    expect(torchRelease('1.13.0a0')).toBe('1.13.0');
    expect(torchRelease('2.13.0')).not.toBe(torchRelease('1.13.0'));
  });
});
