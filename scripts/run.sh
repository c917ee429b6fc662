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
say "starting Metric Vault (release build; the first build takes a while)"
exec cargo run --release --bin metric-vault
