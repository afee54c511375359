// Type-aware lint: the rules that catch real bugs in async, stream-heavy code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'client/browser/dist/**', 'deploy/**/*.js', 'bench/.out/**', 'protocol/validators.generated.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // fastify handlers are async by contract, awaited or not.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The engine core and protocol/ run in browsers too: no Node-only globals there.
    files: ['client/**/*.ts', 'protocol/**/*.ts'],
    ignores: ['client/node/**'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...['setImmediate', 'clearImmediate', 'Buffer', 'process', 'require', '__dirname', 'global'].map((name) => ({
          name,
          message: 'client/ core and protocol/ run in browsers: use a portable API (queueMicrotask, Uint8Array, globalThis).',
        })),
      ],
    },
  },
  {
    // Components speak through pino (origin, tracker) or onWarning (client); a console call
    // there is a debugging leftover. The CLI, benches and tests print on purpose.
    files: ['client/**/*.ts', 'origin/**/*.ts', 'tracker/**/*.ts', 'protocol/**/*.ts'],
    rules: { 'no-console': ['error', { allow: ['debug'] }] },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { ...globals.node }, parserOptions: { projectService: false } },
  },
);
