// Headless Chromium on a run's report page (GET /runs/{id}/report, opened with its signed link):
// the page must draw its uPlot charts from the data it carries, with no console error, no dialog
// (a script smuggled in through a title would open one) and no request beyond the page itself —
// every other request is blocked and fails the run. Started by tests/api/report.rs with
// REPORT_URL (the page's full URL), CHROMIUM (the browser's path), EXPECTED_TITLE (the run's
// title, as typed) and SCREENSHOT (where to save a picture of the whole page). Prints one line,
// `REPORT {...}`, for the test to check; exits 1 on the first broken promise.
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';

const pageUrl = process.env.REPORT_URL;
const expectedTitle = process.env.EXPECTED_TITLE;
const STEP_TIMEOUT = 30_000;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox', // tests may run as root
    '--disable-dev-shm-usage',
    '--disable-gpu',
    // Nothing may leave loopback, not even the browser's own background traffic.
    `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${new URL(pageUrl).hostname}`,
    '--proxy-server=http://127.0.0.1:9',
    '--proxy-bypass-list=<-loopback>;127.0.0.1;localhost',
  ],
});

const problems = [];
const requests = [];
const dialogs = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    requests.push(request.url());
    if (request.url() !== pageUrl) {
      problems.push(`request beyond the page: ${request.url()}`);
      return request.abort('blockedbyclient');
    }
    return request.continue();
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warn') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });

  const started = performance.now();
  const response = await page.goto(pageUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  assert.equal(response.status(), 200, await response.text());
  await page.waitForFunction(() => (window.reportCharts || []).length > 0, { timeout: STEP_TIMEOUT });
  const renderMs = performance.now() - started;

  const seen = await page.evaluate(() => {
    const data = JSON.parse(document.getElementById('report-data').textContent);
    /// Pixels of a canvas that are not transparent: zero for an empty chart.
    const inked = (canvas) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let at = 3; at < pixels.length; at += 4) if (pixels[at] !== 0) count += 1;
      return count;
    };
    const navigation = performance.getEntriesByType('navigation')[0];
    const drawn = performance.getEntriesByName('report-charts-drawn')[0];
    return {
      // The browser's own work: from the page's last byte to the charts drawn.
      drawMs: drawn && navigation ? drawn.startTime - navigation.responseEnd : null,
      // The server's: from the request to the page's first byte.
      firstByteMs: navigation ? navigation.responseStart - navigation.requestStart : null,
      heading: document.getElementById('run-title').textContent,
      documentTitle: document.title,
      canvases: document.querySelectorAll('#chart-groups canvas').length,
      charts: window.reportCharts.map((plot) => ({
        title: plot.root.querySelector('.u-title')?.textContent ?? '',
        points: plot.data[0].length,
        // Per line: the values that are drawn (gaps are null).
        values: plot.data.slice(1).map((column) => column.filter((value) => value != null).length),
        inked: inked(plot.ctx.canvas),
      })),
      groups: [...document.querySelectorAll('#chart-groups .chart-group h3')].map((h) => h.textContent),
      stepSeconds: data.charts.stepSeconds,
      runTps: data.charts.run.tps,
      title: data.run.title,
      totalRequests: data.run.summary?.totalRequests ?? null,
      scenarios: data.scenarios.map((scenario) => scenario.name),
    };
  });
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  assert.equal(seen.heading, expectedTitle, 'the title reads as typed');
  assert.ok(seen.charts.length > 0 && seen.canvases >= seen.charts.length, 'charts were drawn');
  assert.deepEqual(dialogs, [], 'no script from the data ran');
  assert.deepEqual(problems, [], 'no stray request, console error or page error');
  console.log(`REPORT ${JSON.stringify({ ...seen, renderMs, requests, problems, dialogs })}`);
} catch (error) {
  console.error(JSON.stringify({ problems, requests, dialogs }, null, 2));
  throw error;
} finally {
  await browser.close();
}
