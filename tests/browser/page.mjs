// Loads omen's page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and checks what a person would: no console errors, the ranked table
// has scored rows, the chart of the selected series is drawn, the tooltip shows local
// and UTC time. Saves screenshots in OUTDIR.
//
//   node tests/browser/page.mjs URL OUTDIR
//
// Exit 0 and a JSON summary on stdout, or exit 1 with the reason on stderr.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: node page.mjs URL OUTDIR");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 }, timezoneId: "Europe/Berlin" });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  await page.goto(url, { waitUntil: "load" });
  // Scored rows in the table and a drawn chart (bounded wait; the demo warms up first).
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#series tbody tr")];
    return rows.some((r) => /^\d/.test(r.cells[0].textContent)) &&
      document.getElementById("chart-title").textContent !== "Select a series";
  }, null, { timeout: 90_000, polling: 250 });
  // Let a full poll cycle redraw with the current data.
  await page.waitForTimeout(2500);

  const table = await page.$$eval("#series tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  const ink = await page.evaluate(() => {
    const count = (id) => {
      const c = document.getElementById(id);
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n / (c.width * c.height);
    };
    return { values: count("values"), scores: count("scores") };
  });
  const hotRows = table.filter((r) => Number(r[1]) > 1).length;

  // Hover the middle of the value chart: the tooltip shows local time and UTC.
  const box = await page.locator("#values").boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  const tooltip = await page.locator("#tooltip").textContent();
  await page.screenshot({ path: path.join(outDir, "omen-page.png"), fullPage: false });
  await page.mouse.move(0, 0);

  // Laptop width without horizontal scrolling.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: path.join(outDir, "omen-page-1280.png"), fullPage: false });

  if (errors.length) problems.push(`console errors: ${errors.join(" | ")}`);
  if (table.length === 0) problems.push("the ranked table is empty");
  if (hotRows === 0) problems.push("no row has a window maximum above 1");
  if (!(ink.values > 0.02 && ink.scores > 0.01)) problems.push(`the chart looks blank: ${JSON.stringify(ink)}`);
  if (!/UTC/.test(tooltip || "")) problems.push(`tooltip without UTC time: ${tooltip}`);
  if (overflow > 0) problems.push(`the page scrolls sideways at 1280 px by ${overflow} px`);
  console.log(JSON.stringify({ rows: table.length, hotRows, ink, tooltip, overflow, top: table.slice(0, 3) }));
} catch (e) {
  problems.push(String(e));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
