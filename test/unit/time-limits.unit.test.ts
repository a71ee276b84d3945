import { describe, expect, it } from 'vitest';
import { fuserShown } from '../../lib/contract/results';
import { runtimeLimit, stageLimit, TIME_LIMITS } from '../../lib/limits/time-limits';

describe('time limits', () => {
  it('a runtime limit grows with the eager time of the reference cases and the artifact size, and names both', () => {
    const small = runtimeLimit({ eagerMs: 100 }, 1e6, false);
    const large = runtimeLimit({ eagerMs: 20_000 }, 1.2e9, false);
    expect(small.ms).toBe(TIME_LIMITS.runtimeLoadMs + 50 + 50 * 100);
    expect(large.ms).toBe(TIME_LIMITS.runtimeLoadMs + 60_000 + 50 * 20_000);
    expect(large.basis).toBe('180 s to load + 50 × the 20 s the reference cases took eagerly');
  });

  it("NNC's interpreter gets a larger multiple, and time_limits.scale multiplies the whole limit", () => {
    const plain = runtimeLimit({ eagerMs: 1000 }, 0, false);
    const interpreter = runtimeLimit({ eagerMs: 1000 }, 0, true);
    expect(interpreter.ms - TIME_LIMITS.runtimeLoadMs).toBe(16 * (plain.ms - TIME_LIMITS.runtimeLoadMs));
    const scaled = runtimeLimit({ eagerMs: 1000, scale: 3 }, 0, false);
    expect(scaled.ms).toBe(3 * plain.ms);
    expect(scaled.basis).toMatch(/× time_limits\.scale 3$/);
  });

  it('without a measured eager time a runtime keeps the old five minutes after loading, and a stage has no limit of its own', () => {
    expect(runtimeLimit({}, 0, false)).toEqual({ ms: 420_000, basis: '120 s to load + 300 s (no eager time measured)' });
    expect(stageLimit(undefined)).toBeUndefined();
    expect(stageLimit({ scale: 2 })).toBeUndefined();
    expect(stageLimit({ eagerMs: 2000, scale: 2 })).toEqual({
      ms: 2 * (600_000 + 1000 * 2000),
      basis: '600 s + 1000 × the 2.0 s the reference cases took eagerly × time_limits.scale 2',
    });
  });
});

describe('the fuser column', () => {
  it('says what each runtime run really ran: a serving run fuses only where its build does by default', () => {
    const noLlvm = { llvm_enabled: false, can_fuse_on_cpu: false, texpr_fuser_enabled: true };
    expect(fuserShown({ flags: { fuser: false, mode: 'serving' }, fusion: noLlvm })).toBe('off');
    expect(fuserShown({ flags: { fuser: false, mode: 'serving' }, fusion: { ...noLlvm, llvm_enabled: true, can_fuse_on_cpu: true } })).toBe(
      'on',
    );
    expect(fuserShown({ flags: { fuser: true, mode: 'fused' } })).toBe('on');
    expect(fuserShown({ flags: { fuser: true, mode: 'interpreter' } })).toBe('interpreter');
    // Records from before builds were told apart: fuser true was NNC's interpreter.
    expect(fuserShown({ flags: { fuser: true } })).toBe('interpreter');
    expect(fuserShown({ flags: { fuser: false } })).toBe('off');
  });
});
