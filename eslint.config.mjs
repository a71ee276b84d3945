// ESLint (flat config): typescript-eslint with type information, and the rooms of the architecture as import zones
// (README.md, "Rooms"). `make lint` runs it; `make test` runs `make lint` first.
import js from '@eslint/js';
import importX from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const ROOMS = ['lib', 'render', 'temporal', 'activities', 'workflows', 'workers', 'cli'];

// The rooms table: what each room may import of the others (workers/ wires everything; cli/ goes through its entry).
const MAY_IMPORT = {
  lib: [],
  render: ['lib'],
  temporal: ['lib'],
  activities: ['lib'],
  // workflows/: `import type` from activities/ and lib/ (and lib/'s pure constants): a rule of its own below.
  workflows: ['lib', 'activities'],
  cli: ['lib', 'render', 'temporal', 'workflows', 'workers'],
};
const zones = Object.entries(MAY_IMPORT).flatMap(([room, allowed]) =>
  ROOMS.filter((other) => other !== room && !allowed.includes(other)).map((other) => ({
    target: `./${room}`,
    from: `./${other}`,
    message: `${room}/ may not import ${other}/ (README.md, Rooms: ${room}/ may import ${allowed.join(', ') || 'only lib/'}).`,
  })),
);
zones.push({
  target: './cli',
  from: './workers',
  // runtime.ts: the SDK's runtime alone, for commands that connect but serve nothing (they load no activities).
  except: ['./index.ts', './runtime.ts'],
  message: 'cli/ reaches workers/ (and the activities they serve) through workers/index.ts only (workers/runtime.ts: the runtime alone).',
});

// Imports of the Temporal SDK each room may make; `@temporalio/<package>/lib/...` is the SDK's inside, nowhere.
const SDK_INTERNAL = {
  regex: '^@temporalio/[^/]+/lib/',
  message: "the Temporal SDK's internal paths change without notice: import from the package itself.",
};
const temporalOnly = (...allowed) => ({
  regex: `^@temporalio/(?!(${allowed.join('|')})(/|$))`,
  message: allowed.length
    ? `this room imports only ${allowed.map((p) => `@temporalio/${p}`).join(', ')} of the Temporal SDK (README.md, Rooms).`
    : 'this room knows nothing of Temporal (README.md, Rooms).',
});
const restricted = (...patterns) => ['error', { patterns: [SDK_INTERNAL, ...patterns] }];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'build/**',
      'node_modules/**',
      '.venv/**',
      '.torch/**',
      '.fuzz/**',
      '.verify/**',
      '.onnxruntime/**',
      '.corpus/**',
      '.ttd/**',
      'test-output/**',
      'test/fixtures/**',
    ],
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] })],
      // no-cycle reads the modules an import names: TypeScript ones with typescript-eslint's parser.
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js', '.mjs', '.cjs'],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-restricted-imports': restricted(),
      'import-x/no-restricted-paths': ['error', { zones }],
      'import-x/no-cycle': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Matching terminal control characters is the point where ttd escapes them (render/terminal.ts, its tests).
      'no-control-regex': 'off',
    },
  },
  // Tests read the CLI's --json documents and OTLP payloads as they come.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // Integration tests and their helpers never wait on a child synchronously: a fork whose event loop is blocked past
  // vitest's fixed 60 s worker RPC timeout loses its results and fails the suite (test/helpers.ts `command`, `mustRun`).
  {
    files: ['test/integration/**/*.ts', 'test/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [SDK_INTERNAL],
          paths: [
            {
              name: 'node:child_process',
              importNames: ['execSync', 'execFileSync', 'spawnSync'],
              message: 'use command() or mustRun() of test/helpers.ts: a blocked event loop past 60 s loses the file its results.',
            },
          ],
        },
      ],
    },
  },
  { files: ['lib/**/*.ts', 'render/**/*.ts'], rules: { '@typescript-eslint/no-restricted-imports': restricted(temporalOnly()) } },
  { files: ['temporal/**/*.ts'], rules: { '@typescript-eslint/no-restricted-imports': restricted(temporalOnly('client', 'envconfig')) } },
  { files: ['activities/**/*.ts'], rules: { '@typescript-eslint/no-restricted-imports': restricted(temporalOnly('activity')) } },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': restricted(temporalOnly('workflow', 'common'), {
        // Workflow code runs in Temporal's sandbox, replayed: it takes activities/ and lib/ as types only, and of lib/
        // values only its plain constants (no imports of their own): the gate codes, the metric names and the search
        // attributes. (@temporalio/common is what the workflow package re-exports, and the typed search attribute keys.)
        regex: '^\\.\\./(activities|lib)(/(?!contract/(gate-codes|metrics|search-attributes)$)|$)',
        allowTypeImports: true,
        message:
          'workflows/ import activities/ and lib/ as types only (import type), but the gate codes, the metric names and the search attributes.',
      }),
    },
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
);
