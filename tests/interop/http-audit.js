// graphql-http's own audit of the GraphQL over HTTP spec against a running Metric Vault.
// Started by tests/api/hostile/pages.rs with METRIC_VAULT_URL (the /graphql URL) and
// METRIC_VAULT_TOKEN. Prints one line per audit, then a JSON summary line the Rust test reads;
// exits 1 when any audit ends in `error` or `warn`.
import { auditServer } from 'graphql-http';

const url = process.env.METRIC_VAULT_URL;
const token = process.env.METRIC_VAULT_TOKEN;
if (!url || !token) {
  console.error('METRIC_VAULT_URL and METRIC_VAULT_TOKEN must be set');
  process.exit(2);
}

// Every request needs a token; the audit's own headers (accept, content-type) stay as it set them.
const fetchWithToken = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn: fetchWithToken });

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  const reason = result.status === 'ok' ? '' : ` — ${result.reason}`;
  console.log(`${result.status.padEnd(6)} ${result.id} ${result.name}${reason}`);
}
console.log(`AUDIT ${JSON.stringify({ total: results.length, ...counts })}`);
process.exit(counts.error + counts.warn === 0 ? 0 : 1);
