// Drives the trace viewer in headless Chromium (playwright-core, the system browser) and prints
// what it saw as JSON lines, for tests/test_viewer_browser.py and bench/bench_viewer.py.
//
//   node viewer_check.js '<json config>'
//   config: {"userDataDir", "screenshotDir", "scenarios": [{"kind", "url", ...}]}
//
// Kinds: "basic" (node count, click a node, read its code and output), "large" (open, search,
// select a deep node; reports timings), "live" (prints {"ready": true} once the page shows the run,
// then waits for the rollout to finish while the caller appends events), "bench" (timings only).
"use strict";
const { chromium } = require("playwright-core");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function rowsOf(page) {
  return page.$$eval("#tree .row", (rows) => rows.map((r) => r.dataset.id));
}

async function openViewer(page, url) {
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector("#tree .row", { timeout: 20000 });
  await page.waitForSelector("#detail .d-head", { timeout: 20000 });
  return Date.now() - t0;
}

async function basic(page, sc, dir) {
  await openViewer(page, sc.url);
  const rows = await rowsOf(page);
  const totals = await page.textContent("#totals");
  await page.click(`#tree .row[data-id="${sc.click}"]`);
  await page.waitForSelector(`#detail .d-head h2:text-is("${sc.click}")`);
  const code = await page.$$eval("#detail .block pre.code", (els) => els.map((e) => e.textContent));
  const stdout = await page.$$eval("#detail .out.stdout pre", (els) => els.map((e) => e.textContent));
  const errors = await page.$$eval("#detail .out.error pre", (els) => els.map((e) => e.textContent));
  const answer = await page.$$eval("#detail .answer", (els) => els.map((e) => e.textContent));
  const diff = await page.$$eval("#detail .diff-panel", (els) => els.map((e) => e.textContent));
  const selected = await page.$eval("#tree .row.sel", (r) => r.dataset.id);
  // keyboard: down moves the selection to the next row
  await page.focus("#tree");
  await page.keyboard.press("ArrowDown");
  const afterDown = await page.$eval("#tree .row.sel", (r) => r.dataset.id);
  await page.keyboard.press("ArrowUp");
  const shot = dir + "/viewer-basic.png";
  await page.screenshot({ path: shot });
  // search narrows the tree to matches and their ancestors
  await page.fill("#search", sc.search);
  await page.waitForFunction((q) => document.getElementById("search-count").textContent.includes("match"), sc.search);
  const searchRows = await rowsOf(page);
  const matched = await page.$$eval("#tree .row:not(.dim)", (rows) => rows.map((r) => r.dataset.id));
  const bars = await page.$$eval("#tree .bar", (bs) => bs.map((b) => [parseFloat(b.style.left), parseFloat(b.style.width)]));
  return { rows, totals, code, stdout, errors, answer, diff, selected, afterDown, shot, searchRows, matched, bars };
}

async function large(page, sc, dir) {
  const openMs = await openViewer(page, sc.url);
  const rows = await rowsOf(page);
  const domNodes = await page.evaluate(() => document.getElementsByTagName("*").length);
  const t1 = Date.now();
  await page.click(`#tree .row[data-id="${sc.click}"]`);
  await page.waitForSelector(`#detail .d-head h2:text-is("${sc.click}")`);
  const clickMs = Date.now() - t1;
  const cards = await page.$$eval("#detail details.iter", (els) => els.length);
  const iterations = await page.evaluate((id) => window.rlmViewer.state.byId.get(id).iterations.length, sc.click);
  const t2 = Date.now();
  await page.fill("#search", sc.search);
  await page.waitForFunction(() => document.getElementById("search-count").textContent.includes("match"));
  const searchMs = Date.now() - t2;
  const searchRows = (await rowsOf(page)).length;
  const shot = dir + "/viewer-large.png";
  await page.screenshot({ path: shot });
  return { openMs, clickMs, searchMs, rows: rows.length, domNodes, cards, iterations, searchRows, shot };
}

async function live(page, sc, dir) {
  await openViewer(page, sc.url);
  const first = (await rowsOf(page)).length;
  const liveShown = await page.isVisible("#live");
  out({ ready: true, rows: first });
  await page.waitForFunction(
    (n) => document.querySelectorAll("#tree .row").length === n &&
      document.querySelector("#totals .pill").textContent === "completed",
    sc.expectRows, { timeout: 30000, polling: 200 });
  const last = (await rowsOf(page)).length;
  const liveAfter = await page.isVisible("#live");
  const shot = dir + "/viewer-live.png";
  await page.screenshot({ path: shot });
  return { first, last, liveShown, liveAfter, shot };
}

async function bench(page, sc) {
  const times = [];
  for (let i = 0; i < (sc.repeat || 3); i++) times.push(await openViewer(page, sc.url));
  return { openMs: times };
}

(async () => {
  const cfg = JSON.parse(process.argv[2]);
  const browser = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.executablePath || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const kinds = { basic, large, live, bench };
  try {
    for (const sc of cfg.scenarios) {
      const page = await browser.newPage();
      const consoleErrors = [];
      page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
      page.on("pageerror", (e) => consoleErrors.push(String(e)));
      try {
        const result = await kinds[sc.kind](page, sc, cfg.screenshotDir);
        out({ kind: sc.kind, ok: true, consoleErrors, ...result });
      } catch (e) {
        const shot = cfg.screenshotDir + "/viewer-" + sc.kind + "-failed.png";
        await page.screenshot({ path: shot }).catch(() => {});
        out({ kind: sc.kind, ok: false, error: String(e), consoleErrors, shot });
      }
      await page.close();
    }
  } finally {
    await browser.close();
  }
})();
