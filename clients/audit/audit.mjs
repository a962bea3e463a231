// Runs graphql-http's server audit against a running server and prints every result.
// Usage: node audit.mjs http://127.0.0.1:8000 [--strict]   (the server, or its /graphql URL)
// Exits 1 when any audit ends in an error or a warning, or (with --strict) in a notice.
import { serverAudits } from 'graphql-http';

const server = process.argv[2];
const strict = process.argv.includes('--strict');
if (!server) {
  console.error('usage: node audit.mjs <server URL, e.g. http://127.0.0.1:8000> [--strict]');
  process.exit(2);
}
const url = new URL(server).pathname.endsWith('/graphql')
  ? server
  : new URL('/graphql', server).toString();

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    console.log(`${result.status.toUpperCase()} ${audit.id} ${audit.name}: ${result.reason}`);
    if (result.response) {
      const body = await result.response.text().catch(() => '');
      console.log(`  answered ${result.response.status}: ${body.slice(0, 300)}`);
    }
  }
}
console.log(`graphql-http audit: ${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`);
const failed = counts.error + counts.warn + (strict ? counts.notice : 0);
process.exit(failed > 0 ? 1 : 0);
