# Metric Vault server image: the release binary plus k6 for the local runner.
# `docker build -t metric-vault .` (not run in this project's CI: no Docker there).

# ── the browser pages' assets, pinned by web/package-lock.json (build.rs embeds them) ──
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json web/.npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund

# ── build: dependencies first, in a layer that survives source changes ──
FROM rust:1.95-bookworm AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock ./
COPY migrations/Cargo.toml migrations/
RUN mkdir -p src migrations/src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs migrations/src/lib.rs \
    && for bench in server import launch board; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked --bin metric-vault \
    && rm -rf src migrations/src benches
COPY build.rs ./
COPY web/package.json web/package-lock.json web/
COPY --from=web /web/node_modules web/node_modules
COPY src src
COPY migrations/src migrations/src
COPY benches benches
# test_influxd (a library module) embeds its InfluxDB config template from here.
COPY scripts/influxdb.conf.template scripts/
# The stub build left newer artefacts for these crates: make cargo rebuild them.
RUN touch src/main.rs src/lib.rs migrations/src/lib.rs \
    && cargo build --release --locked --bin metric-vault

# ── k6 for the local runner, from the image the Kubernetes runner's pods use ──
FROM grafana/k6:1.1.0 AS k6

# ── runtime: slim, non-root ──
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home metric-vault
COPY --from=k6 /usr/bin/k6 /usr/local/bin/k6
COPY --from=build /app/target/release/metric-vault /usr/local/bin/metric-vault
USER 10001:10001
WORKDIR /data
ENV BIND_ADDR=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///data/metric-vault.db?mode=rwc \
    K6_SCRIPT_FILE_FOLDER=/data/scripts \
    K6_BINARY=/usr/local/bin/k6
EXPOSE 8000
VOLUME ["/data"]
# No curl in the slim image: bash's /dev/tcp asks /health for its 200.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/metric-vault"]
