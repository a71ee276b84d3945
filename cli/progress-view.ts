// How `ttd run` shows a run moving: on a terminal, stage lines and a progress bar for training epochs
// (cli-progress); elsewhere, plain lines. Everything goes to stderr: stdout is for the result (and --json).
import { SingleBar } from 'cli-progress';
import { terminalLine } from '../render/terminal';
import { paint } from './output';

/** What a watcher reports as the workflow moves. */
export interface ProgressView {
  /** A stage began; `epochs` is the number of training epochs when the stage is `train`. */
  stageStarted(stage: string, epochs?: number): void;
  /** A stage ended: `cached` when it reused an earlier identical run's outputs, `failed` when it could not finish. */
  stageDone(stage: string, ms: number, cached: boolean, failed?: boolean): void;
  /** A running stage says what it does now (the environment stage: resolving, installing N packages). */
  phase?(stage: string, text: string): void;
  /** Epoch `epoch` of `epochs` finished with this mean loss. */
  epoch(epoch: number, epochs: number | undefined, loss: number): void;
  close(): void;
}

type Stream = NodeJS.WriteStream;

/** A bar on a terminal (unless TTD_PROGRESS=plain), else plain lines. */
export function progressView(stream: Stream = process.stderr): ProgressView {
  return stream.isTTY && process.env.TTD_PROGRESS !== 'plain' ? new BarView(stream) : new PlainView(stream);
}

// Stage names come from a workflow's progress query, which any client of the server could have started: escaped.
const doneLine = (stage: string, ms: number, cached: boolean, failed = false) =>
  `  ${failed ? paint.red('✗') : paint.green('✓')} ${terminalLine(stage).padEnd(9)} ${cached ? paint.dim('cached') : `${(ms / 1000).toFixed(1)}s`}${failed ? ` ${paint.red('failed')}` : ''}`;

/** One line per event: logs, CI output, pipes. */
export class PlainView implements ProgressView {
  constructor(private readonly stream: { write(s: string): unknown }) {}
  stageStarted(stage: string): void {
    this.stream.write(`  ${paint.dim('▸')} ${terminalLine(stage)}…\n`);
  }
  stageDone(stage: string, ms: number, cached: boolean, failed = false): void {
    this.stream.write(`${doneLine(stage, ms, cached, failed)}\n`);
  }
  phase(_stage: string, text: string): void {
    this.stream.write(`      ${terminalLine(text)}\n`);
  }
  epoch(epoch: number, epochs: number | undefined, loss: number): void {
    this.stream.write(`      epoch ${epoch}/${epochs ?? '?'}  loss ${loss.toFixed(4)}\n`);
  }
  close(): void {}
}

/** A terminal: the running stage with its elapsed time, and a bar of epochs with the current loss. */
export class BarView implements ProgressView {
  private bar: SingleBar | undefined;
  private barStage: string | undefined;

  constructor(private readonly stream: Stream) {}

  stageStarted(stage: string, epochs?: number): void {
    this.stop();
    this.barStage = stage;
    // Every stage gets a line that ticks while it runs; training's becomes a bar of epochs.
    this.bar = new SingleBar({
      stream: this.stream,
      format:
        stage === 'train'
          ? `  ${paint.dim('▸')} {stage} {bar} {value}/{total} epochs  {loss}  {duration_formatted}`
          : `  ${paint.dim('▸')} {stage} {duration_formatted}  {loss}`,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      fps: 5,
    });
    this.bar.start(stage === 'train' ? (epochs ?? 1) : 0, 0, { stage: terminalLine(stage).padEnd(9), loss: '' });
  }

  stageDone(stage: string, ms: number, cached: boolean, failed = false): void {
    if (this.barStage === stage) this.stop();
    this.stream.write(`${doneLine(stage, ms, cached, failed)}\n`);
  }

  phase(stage: string, text: string): void {
    if (this.barStage === stage) this.bar?.update(0, { loss: paint.dim(terminalLine(text)) });
  }

  epoch(epoch: number, epochs: number | undefined, loss: number): void {
    if (this.barStage !== 'train' || !this.bar) this.stageStarted('train', epochs);
    this.bar!.setTotal(epochs ?? epoch);
    this.bar!.update(epoch, { loss: `loss ${loss.toFixed(4)}` });
  }

  close(): void {
    this.stop();
  }

  private stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
      this.barStage = undefined;
    }
  }
}
