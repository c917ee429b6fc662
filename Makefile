# The two commands of the quick start, plus a few conveniences.
.PHONY: run test schema fmt lint fuzz bench-postgraphile

run:  ## set up what is missing and run the server
	./scripts/run.sh

test:  ## set up what is missing and run every test (SQLite + PostgreSQL when available)
	./scripts/test.sh

schema:  ## rewrite schema.graphql from the code
	UPDATE_SCHEMA=1 cargo test --test api schema

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets -- -D warnings

fuzz:  ## fuzz the OpenAPI parser and the k6 duration parser for FUZZ_SECONDS each (default 60); not part of the tests
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} cargo test --lib fuzz_ -- --ignored --nocapture --test-threads 1

bench-postgraphile:  ## our server vs PostGraphile 4 and 5 vs a hand-written baseline (BENCHMARKS.md); ARGS="--seconds 10 --vus 1,8,32"
	test -d competitors/postgraphile/node_modules || npm ci --prefix competitors/postgraphile
	test -d competitors/postgraphile/v5/node_modules || npm ci --prefix competitors/postgraphile/v5
	nice -n 10 cargo bench --bench postgraphile -- $(ARGS)
