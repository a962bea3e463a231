import { defineConfig } from 'vite';

// Only the dev server knows about a backend: it proxies same-origin /graphql (HTTP and
// WebSocket) to COMMERCE_SERVER, default `cargo run`'s address. The built app has no
// endpoint baked in: it reads ?server= from the page URL at run time (see src/config.ts).
const target = process.env.COMMERCE_SERVER ?? 'http://127.0.0.1:8000';

export default defineConfig({
  server: {
    proxy: {
      '/graphql': { target, ws: true, changeOrigin: true },
    },
  },
});
