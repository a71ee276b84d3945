// The pipeline workflow: signing_key → train → trace → verify → optimize → fusion → store → parity → sign → promote,
// or, for a foreign artifact, signing_key → verify → store → parity → sign → promote. Orchestration only; each part
// lives in its own module.
import { isCancellation, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { Gate } from '../lib/contract/gate-codes';
import type { RunResult } from '../lib/contract/results';
import type { DeclaredEnvironment } from '../lib/environments/declared-environments';
import type { EnvironmentOutput } from '../activities';
import { buildFromModel, limitBasis, verifyForeign, type Built, type FormatArtifact } from './build';
import type { Format } from '../lib/spec/spec';
import { progressQuery, SIGNING_PATCH, type PipelineInput } from './definitions';
import { acceptApprovals, awaitApproval, compareWithProduction, mergeParity, promote, versionFacts } from './promotion';
import { noSource, Run, RunEnded } from './run-state';

export { approveUpdate, progressQuery, PIPELINE_WORKFLOW } from './definitions';
export type { ApprovalDecision, PipelineInput, PipelineProgress } from './definitions';

/** The pipeline: one run of one spec. Returns a RunResult whatever happens, except cancellation. */
export async function pipelineWorkflow(input: PipelineInput): Promise<RunResult> {
  const run = new Run(input);
  const { spec } = run;
  setHandler(progressQuery, () => run.progress);
  const approval = acceptApprovals(run);
  try {
    // The key that will sign the version is checked first: a run never trains and then finds it cannot be signed.
    const signing = patched(SIGNING_PATCH);
    if (signing) await run.stage('signing_key', Gate.promotion, () => run.control.checkSigningKey());
    const environment = input.declaredEnvironment ? await buildEnvironment(run, input.declaredEnvironment) : undefined;
    const built = await build(run);
    const stored = await run.stage('store', Gate.promotion, () =>
      run.control.storeArtifact({
        model: spec.name,
        runId: run.runId,
        specDigest: input.specDigest,
        // A declared environment is stored with what its requirements resolved to.
        spec:
          environment && typeof spec.environment === 'object'
            ? { ...spec, environment: { ...spec.environment, resolved: environment.resolved } }
            : spec,
        ...(environment ? { environment } : {}),
        files: built.files,
        stages: built.stages,
        formats: built.formats,
      }),
    );
    run.stored(stored.artifactDigest);

    // Every format is checked in every target runtime; its parity stage is `parity`, or `parity_<format>` after the first.
    const checks = [];
    for (const [i, [format, artifact]] of (Object.entries(built.formats) as [Format, FormatArtifact][]).entries()) {
      const checked = await run.torchStage(i === 0 ? 'parity' : `parity_${format}`, Gate.parity, () =>
        run.torch.checkParity({
          ...run.torchOptions,
          artifactDigest: artifact.digest,
          referencesDigest: artifact.references,
          runtimes: spec.parity.runtimes,
          atol: spec.parity.atol,
          rtol: spec.parity.rtol,
          ...(format === 'torchscript' ? {} : { format }),
          ...(spec.fusion.fused_runs ? { fusedRuns: spec.fusion.fused_runs } : {}),
          ...limitBasis(run, built.eagerMs?.[format]),
        }),
      );
      checks.push(checked);
      run.parity = checks.flatMap((c) => c.runtimes);
      run.judge(Gate.parity, checked);
    }
    const parity = mergeParity(checks);

    // Every gate passed: the version's OpenSSF model signature and SLSA provenance, before it is registered.
    const signed = signing
      ? await run.stage('sign', Gate.promotion, () =>
          run.control.signVersion({
            ...versionFacts(run, stored, parity, run.gates),
            modelFile: input.modelFileDigest ? { digest: input.modelFileDigest, path: input.modelFilePath ?? 'model.py' } : null,
            startedOn: workflowInfo().runStartTime.toISOString(),
          }),
        )
      : undefined;
    const facts = () => ({ ...versionFacts(run, stored, parity, run.gates), ...(signed ? { signed } : {}) });
    if (spec.promote.compare && input.modelFileDigest) await compareWithProduction(run, stored, facts);
    const approved = spec.promote.approval === 'required' ? await awaitApproval(run, approval, stored) : null;
    return run.finish(await promote(run, stored, facts(), approved));
  } catch (err) {
    if (err instanceof RunEnded) return run.finish(err.result);
    if (isCancellation(err)) run.cancelled();
    throw err;
  }
}

// A declared environment, built (or found built) on a worker of the run's pool before anything trains in it.
async function buildEnvironment(run: Run, declared: DeclaredEnvironment): Promise<EnvironmentOutput> {
  const { modelFileDigest } = run.input;
  const env = await run.torchStage('environment', Gate.environment, () =>
    run.torch.buildEnvironment({ ...run.torchOptions, declared, ...(modelFileDigest ? { modelFileDigest } : {}) }),
  );
  const torch = `torch ${env.torch_version} of ${env.base}, shared`;
  const packages = (n: number) => `${n} package${n === 1 ? '' : 's'}`;
  run.pass(
    Gate.environment,
    env.reused
      ? `environment ${env.digest.slice(0, 19)} already built: ${packages(env.resolved.length)} (${torch})`
      : `built environment ${env.digest.slice(0, 19)}: ${packages(env.installed.length)} installed beside ${env.resolved.length - env.installed.length} of the base (${torch})`,
  );
  return env;
}

// The model file's stages, or a foreign artifact's verification.
function build(run: Run): Promise<Built> {
  const { input } = run;
  if (input.foreign) return verifyForeign(run, input.foreign);
  if (input.modelFileDigest && input.modelFilePath) {
    return buildFromModel(run, { modelFileDigest: input.modelFileDigest, modelFilePath: input.modelFilePath });
  }
  throw noSource();
}
