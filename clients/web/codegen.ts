import type { CodegenConfig } from '@graphql-codegen/cli';

// Types for every operation in src/, generated from the server's checked-in SDL.
// `npm run build` (and `npm run dev`) run this first, so src/gql/ can never go stale;
// it is not committed (see .gitignore).
const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['src/**/*.ts', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      // persistedDocuments: src/gql/persisted-documents.json, the manifest a server in trusted
      // mode reads (TRUSTED_DOCUMENTS), and each document's hash in its `__meta__`.
      presetConfig: { fragmentMasking: false, persistedDocuments: { hashAlgorithm: 'sha256' } },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        // Won is a 64-bit integer sent as a JSON number; exact in JS up to 2^53 - 1.
        scalars: {
          Won: 'number',
          DateTime: 'string',
          NaiveDate: 'string',
          ID: 'string',
        },
      },
    },
  },
};

export default config;
