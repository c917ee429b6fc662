#!/usr/bin/env bash
# Sets up what is missing and runs every test: SQLite always, PostgreSQL whenever one
# answers on 127.0.0.1:5432 (a throwaway database per test, dropped afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER="${PGUSER:-postgres}"
pg_up() { (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null; }

# The JavaScript clients of the interop suite (tests/api/subscriptions/interop.rs runs them),
# graphql-http's audit and puppeteer-core (tests/api/hostile/pages.rs), pinned by
# tests/interop/package-lock.json.
if [ ! -f tests/interop/node_modules/.package-lock.json ] \
  || [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
  say "npm ci (tests/interop: graphql-ws, Apollo Client, urql, subscriptions-transport-ws, graphql-http, puppeteer-core)"
  npm ci --prefix tests/interop --no-audit --no-fund
fi

# Headless Chromium drives the GraphiQL and Playground pages (tests/api/hostile/pages.rs).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  say "installing Chromium (apt-get install chromium)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
fi

if ! python3 -c 'import graphql' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check graphql-core || true
fi

# The k8s/ kustomize base, rendered (kubectl when present, else the committed copy the Rust
# test keeps in step), checked against the Kubernetes schemas offline.
if ! command -v kubernetes-validate >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
rendered=tests/fixtures/k8s-rendered.yaml
if command -v kubectl >/dev/null; then
  rendered=$(mktemp --suffix=.yaml)
  kubectl kustomize k8s > "$rendered"
fi
say "kubernetes-validate --strict ($rendered)"
kubernetes-validate --strict --quiet -k 1.33.0 "$rendered"

say "cargo test (SQLite)"
cargo test --workspace --no-fail-fast

if pg_up && command -v psql >/dev/null; then
  admin="postgres://$PG_USER@$PG_HOST:$PG_PORT/postgres"
  drop_test_databases() {
    psql "$admin" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'mvt\_%'" 2>/dev/null |
      while read -r db; do psql "$admin" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
  }
  trap drop_test_databases EXIT
  say "cargo test --test api (PostgreSQL at $PG_HOST:$PG_PORT)"
  TEST_DATABASE_URL="$admin" cargo test --test api --no-fail-fast
else
  say "SKIPPING PostgreSQL: nothing answers on $PG_HOST:$PG_PORT (or psql is missing); only SQLite was tested"
fi

if [ -f ../shared/api/check_contract.py ] && python3 -c 'import graphql' 2>/dev/null; then
  say "API contract check (informational)"
  python3 ../shared/api/check_contract.py schema.graphql | tail -n 3 || true
fi
