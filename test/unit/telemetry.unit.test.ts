// The worker's telemetry settings from flags and environment: what is on, where, and the refusals with their codes.
import { describe, expect, it } from 'vitest';
import { TtdError } from '../../lib/contract/errors';
import { otelFromEnv, workerTelemetry } from '../../workers/telemetry';

const refusal = (fn: () => unknown): { code: string; message: string } => {
  try {
    fn();
  } catch (err) {
    if (err instanceof TtdError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
};

describe('worker telemetry settings', () => {
  it('telemetry is off when neither flags nor environment ask for it', () => {
    expect(workerTelemetry({}, {})).toEqual({ metrics: undefined, otel: false });
    expect(workerTelemetry({}, { TTD_OTEL: '0', TTD_METRICS_PORT: '' })).toEqual({ metrics: undefined, otel: false });
  });

  it('metrics bind loopback by default; the flag wins over TTD_METRICS_PORT, TTD_METRICS_HOST widens the address', () => {
    expect(workerTelemetry({ metricsPort: '9464' }, { TTD_METRICS_PORT: '9000' }).metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(workerTelemetry({}, { TTD_METRICS_PORT: '9000', TTD_METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(workerTelemetry({ metricsPort: '9464', metricsHost: '::1' }, {}).metrics).toEqual({ host: '::1', port: 9464 });
  });

  it('tracing is on with --otel or TTD_OTEL 1 or on, and off with 0 or off', () => {
    expect(workerTelemetry({ otel: true }, {}).otel).toBe(true);
    expect(otelFromEnv({ TTD_OTEL: '1' })).toBe(true);
    expect(otelFromEnv({ TTD_OTEL: 'on' })).toBe(true);
    expect(otelFromEnv({ TTD_OTEL: 'off' })).toBe(false);
  });

  it('a metrics port that is not a whole number from 1 to 65535 is port_invalid naming where it came from', () => {
    expect(refusal(() => workerTelemetry({ metricsPort: '-1' }, {}))).toEqual({
      code: 'port_invalid',
      message: "--metrics-port '-1': expected a port, a whole number from 1 to 65535",
    });
    expect(refusal(() => workerTelemetry({}, { TTD_METRICS_PORT: '65536' }))).toEqual({
      code: 'port_invalid',
      message: "TTD_METRICS_PORT '65536': expected a port, a whole number from 1 to 65535",
    });
    expect(refusal(() => workerTelemetry({ metricsPort: '9464.5' }, {})).code).toBe('port_invalid');
  });

  it('--metrics-host without a port is argument_invalid, and an unknown TTD_OTEL is config_invalid', () => {
    expect(refusal(() => workerTelemetry({ metricsHost: '0.0.0.0' }, {}))).toEqual({
      code: 'argument_invalid',
      message: "--metrics-host '0.0.0.0' needs --metrics-port (or TTD_METRICS_PORT)",
    });
    expect(refusal(() => otelFromEnv({ TTD_OTEL: 'true' }))).toEqual({
      code: 'config_invalid',
      message: "TTD_OTEL='true'; expected 1 or on to trace, 0 or off not to",
    });
  });
});
