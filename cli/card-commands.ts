// `ttd card REF [--json] [-o FILE [--force]]`: a version's model card, built from the store (lib/registry/model-card.ts).
import { rename, rm, writeFile } from 'node:fs/promises';
import { openStore } from '../lib/config';
import { auditReader } from '../lib/registry/keys';
import { loadModelCard } from '../lib/registry/model-card';
import { parseRef, resolveRef } from '../lib/registry/registry';
import { renderCardMarkdown } from '../render/model-card-md';
import { terminalJson } from '../render/terminal';
import { loadTemporalConfig } from '../temporal/config';
import { failWith, printJson, writeOut } from './output';
import { checkOutputFile } from './output-file';

/** `ttd card REF`: Markdown on stdout, or the JSON card with --json; with -o, the file gets it and stdout says so. */
export async function cardCommand(ref: string, opts: { json?: boolean; output?: string; force?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    // Every argument is checked before the store is read: a bad -o writes nothing and reads nothing.
    const parsed = parseRef(ref);
    const dest = opts.output === undefined ? undefined : checkOutputFile(opts.output, Boolean(opts.force), CARD_OUTPUT);
    const config = loadTemporalConfig();
    const store = openStore(config);
    const { state, version } = await resolveRef(store, parsed);
    const card = await loadModelCard(store, state, version, auditReader(config.keysDir));
    if (!dest) {
      if (json) printJson(card);
      else writeOut(renderCardMarkdown(card));
      return;
    }
    // The file holds what stdout would: exact JSON (controls inside strings as \u escapes) or the escaped Markdown.
    const text = json ? `${terminalJson(JSON.stringify(card, null, 2))}\n` : renderCardMarkdown(card);
    const tmp = `${dest}.partial-${process.pid}`;
    try {
      await writeFile(tmp, text, { flag: 'wx' });
      await rename(tmp, dest); // whole or not at all; a rename replaces a file given with --force
    } finally {
      await rm(tmp, { force: true });
    }
    const bytes = Buffer.byteLength(text);
    if (json) printJson({ model: card.model, version: card.version, digest: card.digest, format: 'json', path: dest, bytes });
    else writeOut(`wrote the model card of ${card.model} version ${card.version} (Markdown, ${bytes} bytes) to ${dest}\n`);
  } catch (err) {
    failWith(err, json);
  }
}

const CARD_OUTPUT = { command: 'card', example: 'card.md' } as const;
