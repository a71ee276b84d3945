// The `ttd` command line: parse, call, print. No business logic lives here.
import { Command } from 'commander';
import { modelsCommand, pullCommand, showCommand } from './registry-commands';
import { runCommand } from './run';

async function main(): Promise<void> {
  const program = new Command('ttd')
    .description('train · trace · deploy: PyTorch to a verified, promoted TorchScript artifact, on Temporal')
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

  program
    .command('run')
    .argument('<spec>', 'pipeline.yaml (or .json)')
    .option('--json', 'print exactly one JSON object on stdout')
    .description('run a pipeline: train, trace, verify, optimize, store, check parity, promote')
    .action(runCommand);
  program
    .command('show')
    .argument('<ref>', 'MODEL, MODEL@ALIAS or MODEL:VERSION')
    .option('--json', 'print JSON')
    .description('show a version: digest, aliases, gates and stage reports')
    .action(showCommand);
  program
    .command('pull')
    .argument('<ref>', 'MODEL, MODEL@ALIAS or MODEL:VERSION')
    .requiredOption('-o, --output <file>', 'where to write the TorchScript archive')
    .option('--json', 'print JSON')
    .description('write a version’s TorchScript archive after checking its digest')
    .action(pullCommand);
  program.command('models').option('--json', 'print JSON').description('list registered models').action(modelsCommand);

  await program.parseAsync(process.argv);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
