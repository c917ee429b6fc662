#!/usr/bin/env bash
# Sets up what is missing and runs the server (GraphiQL at http://127.0.0.1:8000/graphql).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
mkdir -p data/scripts
say "starting Metric Vault (release build; the first build takes a while)"
exec cargo run --release --bin metric-vault
