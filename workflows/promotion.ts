// Promotion: compare with production (keep a candidate that is not better), wait for approval, move the alias.
import { condition, setHandler } from '@temporalio/workflow';
import type { StoreOutput, VersionFacts } from '../activities';
import { Gate, GateCode } from '../lib/contract/gate-codes';
import type { GateResult, ParityResult, RunResult } from '../lib/contract/results';
import { approveUpdate, type ApprovalDecision } from './definitions';
import type { Run } from './run-state';

const fmt = (n: number | null) => (n === null ? 'not finite' : n.toPrecision(6));

/** The parity verdicts of every format as one: passed when all passed, every runtime line, the first failure's words. */
export function mergeParity(checks: ParityResult[]): ParityResult {
  const failed = checks.find((c) => !c.passed);
  return {
    passed: !failed,
    code: failed?.code ?? null,
    message: failed?.message ?? checks.map((c) => c.message).join('; '),
    runtimes: checks.flatMap((c) => c.runtimes),
  };
}

/** What a version record states, for a kept version and a promoted one alike. */
export function versionFacts(run: Run, stored: StoreOutput, parity: ParityResult, gates: GateResult[]): VersionFacts {
  const { spec } = run;
  return {
    model: spec.name,
    artifactDigest: stored.artifactDigest,
    manifestDigest: stored.manifestDigest,
    runId: run.runId,
    actor: run.input.actor,
    trigger: run.input.trigger,
    commit: run.input.commit,
    gates,
    parity: { ...parity, atol: spec.parity.atol, rtol: spec.parity.rtol },
    timings: { ...run.timings },
    ...(run.cached.length ? { cached: [...run.cached] } : {}),
  };
}

/** promote.compare: a candidate that is not better than production is kept as a version without moving the alias. */
export async function compareWithProduction(run: Run, stored: StoreOutput, facts: () => VersionFacts): Promise<void> {
  const { spec, input } = run;
  const { metric, min_improvement } = spec.promote.compare!;
  const current = await run.stage('compare', Gate.promotion, () =>
    run.control.currentAlias({ model: spec.name, alias: spec.promote.alias }),
  );
  if (!current || current.digest === stored.artifactDigest) return;
  const evaluated = await run.torchStage('evaluate', Gate.promotion, () =>
    run.torch.evaluate({
      ...run.torchOptions,
      modelFileDigest: input.modelFileDigest!,
      modelFilePath: input.modelFilePath ?? 'model.py',
      params: spec.params,
      loss: spec.train.loss,
      batchSizes: spec.trace.batch_sizes,
      artifacts: [
        { name: 'candidate', digest: stored.artifactDigest },
        { name: 'production', digest: current.digest },
      ],
    }),
  );
  const loss = (name: string) => evaluated.results.find((r) => r.name === name)?.validation_loss ?? null;
  const candidate = loss('candidate');
  const production = loss('production');
  if (candidate !== null && production !== null && candidate < production - min_improvement) return;
  const kept = await run.stage('keep', Gate.promotion, () =>
    run.control.keepVersion({ ...facts(), reason: GateCode.notBetterThanProduction }),
  );
  run.reject({
    gate: Gate.promotion,
    passed: false,
    code: GateCode.notBetterThanProduction,
    message: `candidate ${metric} ${fmt(candidate)} is not better than production (version ${current.version}) ${fmt(production)} by more than min_improvement ${min_improvement}; kept as version ${kept.version}, '${spec.promote.alias}' not moved`,
  });
}

/** Accepts `ttd approve` answers while the run waits for one; returns the answer so far. */
export function acceptApprovals(run: Run): () => ApprovalDecision | undefined {
  let decision: ApprovalDecision | undefined;
  setHandler(
    approveUpdate,
    (d) => {
      decision = d;
      return { accepted: true, by: d.by, approve: d.approve };
    },
    {
      validator: (d) => {
        if (decision) throw new Error(`run '${run.runId}' was already ${decision.approve ? 'approved' : 'rejected'} by ${decision.by}`);
        if (run.progress.status !== 'awaiting_approval') {
          throw new Error(`run '${run.runId}' is not waiting for approval (stage: ${run.progress.stage ?? 'between stages'})`);
        }
        if (!d || typeof d.by !== 'string' || !d.by.trim()) throw new Error('an approval needs --by NAME');
      },
    },
  );
  return () => decision;
}

/** Waits for a person's approval; a rejection or a timeout is recorded in the audit trail and rejects the run. */
export async function awaitApproval(
  run: Run,
  answer: () => ApprovalDecision | undefined,
  stored: StoreOutput,
): Promise<{ by: string; reason: string | null }> {
  const { spec } = run;
  run.progress.status = 'awaiting_approval';
  run.progress.stage = 'approval';
  const started = Date.now();
  const timeout = spec.promote.approval_timeout;
  // condition() with an undefined timeout would not wait: wait without one when none is set.
  const answered = timeout
    ? await condition(() => answer() !== undefined, timeout as `${number}${string}`)
    : (await condition(() => answer() !== undefined), true);
  run.timings.approval = Date.now() - started;
  run.progress.status = 'running';
  run.progress.stage = null;
  const d = answer();
  if (!answered || !d) {
    await run.control.recordAudit({
      action: 'approval_timeout',
      model: spec.name,
      runId: run.runId,
      actor: 'ttd',
      reason: `no answer within ${timeout}`,
    });
    run.reject({
      gate: Gate.promotion,
      passed: false,
      code: GateCode.approvalTimeout,
      message: `no approval within promote.approval_timeout ${timeout}; nothing promoted`,
    });
  }
  if (!d.approve) {
    await run.stage('audit', Gate.promotion, () =>
      run.control.recordAudit({
        action: 'approval_rejected',
        model: spec.name,
        runId: run.runId,
        actor: d.by,
        reason: d.reason ?? null,
        digest: stored.artifactDigest,
      }),
    );
    run.reject({
      gate: Gate.promotion,
      passed: false,
      code: GateCode.approvalRejected,
      message: `rejected by ${d.by}${d.reason ? `: ${d.reason}` : ''}; nothing promoted`,
    });
  }
  return { by: d.by, reason: d.reason ?? null };
}

/** Registers the version, moves the alias and appends the audit record; the run's result. */
export async function promote(
  run: Run,
  stored: StoreOutput,
  facts: VersionFacts,
  approval: { by: string; reason: string | null } | null,
): Promise<RunResult> {
  const { spec } = run;
  const promoted = await run.stage('promote', Gate.promotion, () =>
    run.control.promoteModel({
      ...facts,
      gates: [...facts.gates, { gate: Gate.promotion, passed: true, code: null, message: 'all gates passed' }],
      alias: spec.promote.alias,
      approval,
    }),
  );
  run.pass(
    Gate.promotion,
    `version ${promoted.version} of '${spec.name}' is now '${spec.promote.alias}'${promoted.previousVersion ? ` (was version ${promoted.previousVersion})` : ''}; audit record ${promoted.auditSeq}`,
  );
  return run.result('promoted', { version: promoted.version, digest: stored.artifactDigest, alias: spec.promote.alias });
}
