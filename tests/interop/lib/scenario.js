// What every client must manage against a running Metric Vault: a query, a mutation that
// launches a real (short) k6 run, the run's status events and its live metrics.
//
// The server is not started here: tests/api/subscriptions/interop.rs starts it (with
// InfluxDB, k6 and a target API) and passes:
//   METRIC_VAULT_URL          http://127.0.0.1:PORT/graphql
//   METRIC_VAULT_PROJECT_ID   the project whose endpoint is loaded
//   METRIC_VAULT_ENDPOINT_ID  an endpoint (GET /items/{id}) of that project
//   METRIC_VAULT_TOKEN        an OPERATOR API token, sent the way each client sends one
import assert from 'node:assert/strict';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these through \`cargo test --test api interop\`, which starts the server`);
  }
  return value;
}

export const httpUrl = required('METRIC_VAULT_URL');
export const wsUrl = httpUrl.replace(/^http/, 'ws');
export const projectId = required('METRIC_VAULT_PROJECT_ID');
const endpointId = required('METRIC_VAULT_ENDPOINT_ID');
const token = required('METRIC_VAULT_TOKEN');

/** The HTTP header, and the `connection_init` payload websocket clients send. */
export const authHeaders = { authorization: `Bearer ${token}` };
export const connectionParams = { authorization: `Bearer ${token}` };

/** Generous bound for one whole exercise: k6 start-up, the run, its end. */
export const EXERCISE_TIMEOUT_MS = 120_000;

export const PROJECTS = 'query Projects { projects { id title } }';
export const LAUNCH = `mutation Launch($input: LaunchLoadTestInput!) {
  launchLoadTest(input: $input) { id status }
}`;
export const RUN = `query Run($id: ID!) {
  testHistory(id: $id) { id status resultsComplete missingSamples summary { totalRequests } }
}`;
export const STATUS = `subscription Status($project: ID) {
  testStatusChanged(projectId: $project) { previousStatus status at testHistory { id status } }
}`;
export const METRICS = `subscription Metrics($id: ID!) {
  testMetrics(testHistoryId: $id) {
    testHistoryId time elapsedSeconds tps avgResponseTime p95ResponseTime errorRate vus totalRequests final
    scenarios { name tps totalRequests }
  }
}`;

export function launchInput(client) {
  return {
    title: `Interop: ${client}`,
    scenarios: [
      {
        name: `${client} browse`,
        endpointId,
        executor: 'CONSTANT_VUS',
        thinkTime: 0.05,
        // Longer than the server's 12 s keep-alive interval: the clients must take its
        // `ping` (graphql-transport-ws) or `ka` (legacy) in their stride.
        stages: [{ duration: '14s', target: 2 }],
      },
    ],
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

const gaps = (values) => values.slice(1).map((value, i) => value - values[i]);

/**
 * Runs the whole exercise through `client`, an adapter over one real library:
 *   query(document, variables) and mutate(document, variables) -> Promise<{ data, errors }>
 *   subscribe(document, variables, onResult) -> { done: Promise, unsubscribe() }
 *   settle() -> Promise: resolves once the server has surely registered earlier subscriptions
 */
export async function exercise(name, client) {
  const projects = await client.query(PROJECTS, {});
  assert.equal(projects.errors, undefined, JSON.stringify(projects.errors));
  assert.ok(projects.data.projects.some((p) => p.id === projectId), 'the query sees the lab project');

  const statusEvents = [];
  const status = client.subscribe(STATUS, { project: projectId }, (result) => statusEvents.push(result));
  let statusEnded = null;
  status.done.then(
    () => (statusEnded = 'completed'),
    (error) => (statusEnded = `failed: ${error?.message ?? JSON.stringify(error)}`),
  );
  await within(10_000, client.settle(), 'a round trip on the websocket');

  const launched = await client.mutate(LAUNCH, { input: launchInput(name) });
  assert.equal(launched.errors, undefined, JSON.stringify(launched.errors));
  const id = launched.data.launchLoadTest.id;

  const snapshots = [];
  const metrics = client.subscribe(METRICS, { id }, (result) => snapshots.push({ result, receivedAt: Date.now() }));
  await within(90_000, metrics.done, `the end of the metrics subscription (so far ${JSON.stringify(snapshots)})`);

  const ofRun = () => statusEvents.filter((r) => r.data?.testStatusChanged.testHistory.id === id);
  const completed = async () => {
    while (!ofRun().some((r) => r.data.testStatusChanged.status === 'COMPLETED')) {
      assert.equal(statusEnded, null, `the status subscription ended early; events: ${JSON.stringify(statusEvents)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  await within(30_000, completed(), `run ${id} COMPLETED among ${JSON.stringify(statusEvents)}`);
  status.unsubscribe();
  const run = await client.query(RUN, { id });

  const seen = checkSnapshots(id, snapshots, run.data.testHistory);
  checkStatusEvents(statusEvents, ofRun());
  return {
    id,
    snapshots: snapshots.length,
    summary: `run ${id}: ${snapshots.length} snapshots (median spacing ${seen.spacing} s), final totalRequests ${seen.total}, statuses ${ofRun().map((r) => r.data.testStatusChanged.status).join(' > ')}`,
  };
}

function checkSnapshots(id, received, run) {
  for (const { result } of received) {
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
  }
  const snapshots = received.map(({ result }) => result.data.testMetrics);
  assert.ok(snapshots.length >= 10, `snapshots: ${JSON.stringify(snapshots)}`);
  const last = snapshots.at(-1);
  assert.equal(last.final, true, 'the last snapshot is marked final');
  assert.ok(
    snapshots.slice(0, -1).every((s) => s.final === false),
    `and only the last one: ${JSON.stringify(received.map(({ result }) => [result.data.testMetrics.time, result.data.testMetrics.final, result.hasNext, result.stale]))}`,
  );
  assert.ok(snapshots.every((s) => s.testHistoryId === id));

  const times = snapshots.map((s) => Date.parse(s.time));
  assert.ok(gaps(times).every((gap) => gap > 0), `snapshot times go forward: ${snapshots.map((s) => s.time)}`);
  const live = snapshots.slice(0, -1);
  const spacing = median(gaps(live.map((s) => Date.parse(s.time)))) / 1000;
  assert.ok(spacing >= 0.5 && spacing <= 2, `about one snapshot per second (median ${spacing} s)`);
  const arrivals = received.slice(0, -1).map((r) => r.receivedAt);
  const arrivalSpacing = median(gaps(arrivals)) / 1000;
  assert.ok(arrivalSpacing >= 0.3 && arrivalSpacing <= 3, `they arrive about once per second (median ${arrivalSpacing} s)`);

  const loaded = live.filter((s) => s.tps > 0);
  assert.ok(loaded.length >= 10, `a 14 s run shows load in most snapshots: ${JSON.stringify(live)}`);
  for (const s of loaded) {
    assert.ok(s.avgResponseTime > 0 && s.p95ResponseTime > 0, JSON.stringify(s));
    assert.equal(s.errorRate, 0);
    assert.equal(s.scenarios.length, 1);
  }
  // k6 samples its VUs once a second, from the end of the first second on.
  assert.ok(loaded.some((s) => s.vus >= 1), `VUs show: ${JSON.stringify(loaded)}`);
  assert.ok(gaps(snapshots.map((s) => s.totalRequests)).every((gap) => gap >= 0), 'totals only grow');
  assert.equal(run.status, 'COMPLETED');
  // Live snapshots count the samples InfluxDB holds; the summary is k6's own count. They agree
  // exactly, or the run says how many samples InfluxDB lacks.
  assert.equal(
    last.totalRequests + (run.resultsComplete ? 0 : run.missingSamples ?? 0),
    run.summary.totalRequests,
    `the final count is the run summary, less what InfluxDB lacks: ${JSON.stringify(run)}`,
  );
  return { spacing, total: last.totalRequests };
}

function checkStatusEvents(all, ofRun) {
  assert.ok(all.every((r) => r.errors === undefined), JSON.stringify(all.find((r) => r.errors)));
  const transitions = ofRun.map((r) => [r.data.testStatusChanged.previousStatus, r.data.testStatusChanged.status]);
  assert.deepEqual(transitions, [
    [null, 'PENDING'],
    ['PENDING', 'RUNNING'],
    ['RUNNING', 'COMPLETED'],
  ]);
  const at = ofRun.map((r) => Date.parse(r.data.testStatusChanged.at));
  assert.ok(gaps(at).every((gap) => gap >= 0), 'in the order they happened');
}

/** Resolves after `ms`, or rejects: bounds every wait on the server. */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
