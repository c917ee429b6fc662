#!/usr/bin/env bash
# Sets up what is missing and runs the server (GraphiQL at http://127.0.0.1:8000/graphql).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
mkdir -p data/scripts
# The server's InfluxDB, unless one is configured elsewhere; its data stays under ./data/influxdb.
if [ "${INFLUXDB_HOST:-127.0.0.1}" = "127.0.0.1" ] || [ "${INFLUXDB_HOST:-}" = "localhost" ]; then
  ./scripts/influxdb.sh start "${INFLUXDB_PORT:-8086}" "$PWD/data/influxdb"
fi

# Every request needs an API token (unless AUTH_MODE=none). On first run, make a bootstrap
# admin token for this checkout and keep it in ./data/admin-token (readable by you only).
if [ "${AUTH_MODE:-token}" != "none" ] && [ -z "${METRIC_VAULT_ADMIN_TOKEN:-}" ]; then
  if [ ! -s data/admin-token ]; then
    (umask 077; python3 -c 'import secrets; print("mv_" + secrets.token_urlsafe(32))' > data/admin-token)
    say "created a bootstrap admin token in data/admin-token"
  fi
  METRIC_VAULT_ADMIN_TOKEN="$(cat data/admin-token)"
  export METRIC_VAULT_ADMIN_TOKEN
  port="${BIND_ADDR:-127.0.0.1:8000}"; port="${port##*:}"
  say "admin token: $METRIC_VAULT_ADMIN_TOKEN"
  say "GraphiQL, signed in: http://127.0.0.1:$port/graphql#token=$METRIC_VAULT_ADMIN_TOKEN"
  say "curl: -H \"Authorization: Bearer \$(cat data/admin-token)\"; more tokens: createApiToken in GraphiQL"
fi

say "starting Metric Vault (release build; the first build takes a while)"
exec cargo run --release --bin metric-vault
