// Headless Chromium on Metric Vault's GraphiQL and Playground pages, with nothing reachable
// but the server: every request to another origin fails the run, and so does any console error
// (Content-Security-Policy violations included). Started by tests/api/hostile/pages.rs with
// METRIC_VAULT_URL (the server's base URL), METRIC_VAULT_TOKEN, CHROMIUM (the browser's path),
// SCREENSHOT_DIR and EXPECTED_TITLE (a project the server holds). Prints one JSON line per
// page (`PAGE {...}`); exits 1 on the first broken promise.
import assert from 'node:assert/strict';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const base = new URL(process.env.METRIC_VAULT_URL);
const token = process.env.METRIC_VAULT_TOKEN;
const expectedTitle = process.env.EXPECTED_TITLE;
const screenshots = process.env.SCREENSHOT_DIR;
const STEP_TIMEOUT = 30_000;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox', // tests may run as root
    '--disable-dev-shm-usage',
    '--disable-gpu',
    // Nothing may leave loopback, not even the browser's own background traffic: every name
    // but the server's resolves to nothing and every other URL goes to a closed local proxy.
    `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${base.hostname}`,
    '--proxy-server=http://127.0.0.1:9',
    '--proxy-bypass-list=<-loopback>;127.0.0.1;localhost',
  ],
});

/// The page under test, for the report when a step fails.
let current = null;

/// Opens `url` in a fresh page that records what must not happen.
async function open(url) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const problems = [];
  const requests = [];
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    const target = new URL(request.url());
    if (target.protocol === 'data:' || target.protocol === 'blob:') return request.continue();
    requests.push(request.url());
    if (target.origin !== base.origin) {
      problems.push(`request outside the server: ${request.url()}`);
      return request.abort('blockedbyclient');
    }
    return request.continue();
  });
  // Schema fetches (introspection), with the server's answer to each.
  const introspections = [];
  page.on('response', async (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
    if (!(response.request().postData() ?? '').includes('__schema')) return;
    const answer = await response.json().catch(() => null);
    introspections.push(answer?.errors ?? 'ok');
  });
  page.on('requestfailed', (request) => {
    if (new URL(request.url()).origin === base.origin) problems.push(`failed: ${request.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // Websockets are not intercepted; the DevTools protocol still reports each one.
  const sockets = [];
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketCreated', ({ url: socketUrl }) => {
    sockets.push(socketUrl);
    if (new URL(socketUrl).host !== base.host) problems.push(`websocket outside the server: ${socketUrl}`);
  });
  current = { page, problems, requests, sockets, introspections };
  const response = await page.goto(url, { waitUntil: 'networkidle0', timeout: STEP_TIMEOUT });
  return { page, problems, requests, sockets, introspections, response };
}

/// The page's schema fetch must load: both tools' introspection queries nest nine levels of
/// `ofType`, which the server's depth limit does not hold against them.
function schemaStatus(introspections, tool) {
  assert.ok(introspections.length >= 1, `${tool} asked for the schema`);
  for (const answer of introspections) {
    assert.equal(answer, 'ok', `${tool}'s schema fetch: ${JSON.stringify(answer)}`);
  }
  return 'loaded';
}

/// Puts `text` in GraphiQL's query editor and runs it. GraphiQL parses the editor's text a
/// moment after it changes, and picks HTTP or the websocket from that parse: hence the pause.
async function runInGraphiql(page, text) {
  await page.$eval('.graphiql-query-editor .CodeMirror', (element, value) => element.CodeMirror.setValue(value), text);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await page.click('.graphiql-execute-button');
}

/// The text of the CodeMirror 5 editor under `selector`.
const editorText = (page, selector) =>
  page.$eval(selector, (element) => element.CodeMirror.getValue());

async function graphiql() {
  const { page, problems, requests, sockets, introspections, response } = await open(
    new URL(`/graphql#token=${encodeURIComponent(token)}`, base).href
  );
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/, 'the page carries a Content-Security-Policy');
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: STEP_TIMEOUT });
  assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
  const graphiqlSchema = schemaStatus(introspections, 'GraphiQL');

  // A query over HTTP, run from the editor.
  await runInGraphiql(page, '{ projects { title } }');
  await page.waitForFunction(
    (title) => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes(title),
    { timeout: STEP_TIMEOUT },
    expectedTitle
  );
  const answer = JSON.parse(await editorText(page, '.graphiql-response .CodeMirror'));
  assert.deepEqual(answer, { data: { projects: [{ title: expectedTitle }] } });
  const screenshot = path.join(screenshots, 'graphiql.png');
  await page.screenshot({ path: screenshot });

  // A subscription over graphql-ws, signed in with the same token: the server answers that
  // run's absence, which it could only do on an accepted connection.
  await runInGraphiql(page, 'subscription Watch { testMetrics(testHistoryId: "424242") { final } }');
  await page.waitForFunction(
    () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes('NOT_FOUND'),
    { timeout: STEP_TIMEOUT }
  );
  assert.equal(sockets.length, 1, `one websocket to the server: ${sockets}`);

  assert.deepEqual(problems, [], 'GraphiQL loaded, ran and subscribed with no stray request or console error');
  console.log(`PAGE ${JSON.stringify({ page: 'graphiql', requests: requests.length, schema: graphiqlSchema, screenshot })}`);
  await page.close();
}

async function playground() {
  const { page, problems, requests, introspections, response } = await open(new URL('/playground', base).href);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  await page.waitForSelector('.playground .CodeMirror', { timeout: STEP_TIMEOUT });
  // Playground asks for the schema after it renders; its answer may still be on the way.
  const deadline = Date.now() + STEP_TIMEOUT;
  while (introspections.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const screenshot = path.join(screenshots, 'playground.png');
  await page.screenshot({ path: screenshot });
  const schema = schemaStatus(introspections, 'Playground');
  assert.deepEqual(problems, [], 'Playground rendered with no stray request or console error');
  console.log(`PAGE ${JSON.stringify({ page: 'playground', requests: requests.length, schema, screenshot })}`);
  await page.close();
}

try {
  await graphiql();
  await playground();
} catch (error) {
  if (current) {
    const screenshot = path.join(screenshots, 'failure.png');
    await current.page.screenshot({ path: screenshot }).catch(() => {});
    console.error(JSON.stringify({ problems: current.problems, requests: current.requests, sockets: current.sockets, screenshot }, null, 2));
  }
  throw error;
} finally {
  await browser.close();
}
