// Times `SwaggerParser.validate()` of @apidevtools/swagger-parser on one OpenAPI document, for
// `cargo bench --bench import` (benches/import.rs), which compares it with Metric Vault's import.
//
// Usage: node validate.mjs <file> <iterations>
// Prints one JSON line: {"valid":true,"iterations":N,"validate_median_ms":…,"validate_min_ms":…,
// "load_median_ms":…} or, when validate() rejects the document, {"valid":false,"error":"…"}.
//
// Only validate() is timed. The file is read once; each iteration turns the text into a fresh
// object first (untimed, reported as load_median_ms), because validate() dereferences the object
// it is given in place, so a reused object would make every call after the first one cheaper.
// The text is turned into an object the way swagger-parser's own reader does it for a path:
// JSON.parse for .json, js-yaml with its JSON schema for anything else.

import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";

import SwaggerParser from "@apidevtools/swagger-parser";
import yaml from "js-yaml";

/** Median of a list of numbers; the mean of the two middle values for an even count. */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const [file, iterationsArg] = process.argv.slice(2);
const iterations = Number.parseInt(iterationsArg ?? "", 10);
if (!file || !Number.isInteger(iterations) || iterations < 1) {
  console.error("usage: node validate.mjs <file> <iterations>");
  process.exit(2);
}

const text = await readFile(file, "utf8");
const load = file.endsWith(".json")
  ? () => JSON.parse(text)
  : () => yaml.load(text, { schema: yaml.JSON_SCHEMA });

const loadMs = [];
const validateMs = [];
for (let i = 0; i < iterations; i += 1) {
  const loadStart = performance.now();
  const api = load();
  const loadEnd = performance.now();
  try {
    await SwaggerParser.validate(api);
  } catch (error) {
    // A rejection is a result, not a failure of the benchmark: report it and stop.
    const message = String(error?.message ?? error).slice(0, 1000);
    console.log(JSON.stringify({ valid: false, error: message }));
    process.exit(0);
  }
  validateMs.push(performance.now() - loadEnd);
  loadMs.push(loadEnd - loadStart);
}

console.log(
  JSON.stringify({
    valid: true,
    iterations,
    validate_median_ms: median(validateMs),
    validate_min_ms: Math.min(...validateMs),
    load_median_ms: median(loadMs),
  }),
);
