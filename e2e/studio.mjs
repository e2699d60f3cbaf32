// End-to-end test of the rvbbit Studio in a real browser: Playwright (playwright-core) driving Chromium
// headless against a running `rvbbit serve` with a seeded store and the testkit LLM server.
//
// Run by crates/cli/tests/it/studio_e2e.rs, which starts everything and passes:
//   STUDIO_URL      base URL of the running server
//   SEEDED_SESSION  id of a finished LLM session in the store
//   SEEDED_PROMPT   text the seeded session's prompt contains
//   SEEDED_REPLY    text the model replied
//   RVBBIT_CHROMIUM the Chromium binary (Debian's /usr/bin/chromium)
//   ARTIFACTS       folder for the screenshots
//   SCREENSHOTS     (optional) folder for the documentation's screenshots (docs/images), written at a
//                   fixed 1280 px width so they stay small and comparable
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env("STUDIO_URL");
const seeded = env("SEEDED_SESSION");
const prompt = env("SEEDED_PROMPT");
const reply = env("SEEDED_REPLY");
const artifacts = env("ARTIFACTS");
mkdirSync(artifacts, { recursive: true });
const docsShots = process.env.SCREENSHOTS || "";
if (docsShots) mkdirSync(docsShots, { recursive: true });

const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
};
const shot = async (page, name) => {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
};
// A screenshot for the docs: the part of the page that matters (an element), else the first screen.
const docShot = async (page, name, selector) => {
  await shot(page, name);
  if (!docsShots) return;
  const path = join(docsShots, `${name}.png`);
  if (selector) await page.locator(selector).first().screenshot({ path });
  else await page.screenshot({ path });
  console.log(`doc screenshot ${path}`);
};

const browser = await chromium.launch({
  executablePath: env("RVBBIT_CHROMIUM"),
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const errors = [];
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await desktop.newPage();
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  page.on("response", (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()} for ${r.url()}`));

  // 1. The sessions list shows the seeded session; clicking it opens its page.
  await page.goto(`${base}/`);
  const link = page.locator(`a[href="/sessions/${seeded}"]`).first();
  check(await link.isVisible(), "the sessions list links the seeded session");
  await shot(page, "1-sessions");
  await link.click();
  await page.waitForURL(`**/sessions/${seeded}`);

  // 2. The session page shows what the model saw and what it said.
  check((await page.locator("#status").textContent()).trim() === "completed", "the seeded session is completed");
  const messages = await page.locator(".messages").first().innerText();
  check(messages.includes(prompt), "the LLM call shows the exact prompt sent");
  check(messages.includes(reply), "the LLM call shows the model's reply");
  await shot(page, "2-session");

  // 3. The SQL console runs a query and shows the rows; an error points at its position.
  await page.click('nav a[href="/sql"]');
  await page.fill("#query", "SELECT cascade_id, count(*) AS events FROM all_data WHERE cascade_id IS NOT NULL GROUP BY cascade_id ORDER BY cascade_id");
  await Promise.all([page.waitForLoadState("load"), page.click("#run-sql")]);
  await page.waitForSelector("#sql-result");
  const table = await page.locator("#sql-result").innerText();
  check(table.includes("cascade_id") && table.includes("hello_llm"), "the console shows the query's rows");
  check((await page.locator("#sql-summary").innerText()).includes("caller http-"), "the statement ran under an http- caller");
  await shot(page, "3-sql");
  await page.fill("#query", "SELECT *\nFROM all_data WHERE = 1");
  await page.press("#query", "Control+Enter");
  await page.waitForSelector("#sql-error");
  const caret = await page.locator("#sql-error-position").innerText();
  check(caret.startsWith("line 2, column"), `a SQL error shows its position (${caret.split("\n")[0]})`);
  await shot(page, "4-sql-error");

  // 4. The run form starts a run; its page follows it live until it completes.
  await page.click('nav a[href="/cascades"]');
  await page.click('a[href="/cascades/slow_llm.yaml"]');
  await page.fill('#run-form [name="input.name"]', "Grace");
  await Promise.all([page.waitForURL("**/sessions/**"), page.click('#run-form button[type="submit"]')]);
  const runUrl = page.url();
  const running = (await page.locator("#status").textContent()).trim();
  check(running === "running", `the new run's page opens while it runs (status ${running})`);
  await page.waitForSelector("#live li", { timeout: 15000 });
  check((await page.locator("#live li").count()) > 0, "live events arrive while the run goes on");
  await shot(page, "5-run-live");
  // The script reloads the page when the stream says `complete`; no manual reload here.
  await page.waitForFunction(() => document.getElementById("status")?.textContent.trim() === "completed", null, { timeout: 30000 });
  check(page.url() === runUrl, "the run completed on the same page, followed live");
  check((await page.locator(".messages").last().innerText()).includes("Grace"), "the finished run shows its LLM call");
  await shot(page, "6-run-complete");

  await page.click('nav a[href="/costs"]');
  check(await page.locator("svg.chart").first().isVisible(), "the cost explorer draws its charts");
  await shot(page, "7-costs");
  check(errors.length === 0, `no script errors on the desktop pages (${errors.join("; ")})`);

  // 6. Pictures: cost, tokens and latency over time with a range picker.
  await page.click('#ranges a:text-is("24h")');
  await page.waitForURL("**/costs?range=24h**");
  for (const id of ["chart-cost", "chart-tokens", "chart-latency"]) {
    check(await page.locator(`svg#${id}`).isVisible(), `the costs page draws ${id} over the last 24h`);
  }
  check((await page.locator("svg#chart-cost circle").count()) > 0, "the cost chart has points for the calls");
  await page.click('#ranges a:text-is("model")');
  await page.waitForURL("**by=model**");
  check((await page.locator("#legend").innerText()).includes("test/model"), "per model, the legend names the model");
  await docShot(page, "studio-costs", "main");

  // 7. Humans in the loop: a screen's routes are buttons; answering one continues the run.
  await page.goto(`${base}/cascades/review_screen.yaml`);
  await Promise.all([page.waitForURL("**/sessions/**"), page.click('#run-form button[type="submit"]')]);
  // The page reloads itself when the run starts waiting; reload by hand too, should that event have
  // come before the page subscribed.
  for (let i = 0; i < 40 && (await page.locator("#waits").count()) === 0; i++) {
    await page.waitForTimeout(500);
    if (i % 6 === 5) await page.reload();
  }
  await page.waitForSelector("#waits", { timeout: 5000 });
  const screenText = await page.locator("pre.screen").innerText();
  check(screenText.includes("A short draft") && !screenText.includes("<"), "the screen is shown as text, not HTML");
  check(await page.locator('#waits button:text-is("Ship it")').isVisible(), "each route of the screen is a button");
  await docShot(page, "studio-approve", "#waits");
  await Promise.all([page.waitForLoadState("load"), page.click('#waits button:text-is("Ship it")')]);
  await page.waitForFunction(() => document.getElementById("status")?.textContent.trim() === "completed", null, { timeout: 30000 });
  check(!(await page.content()).includes("RVB-H001"), "once answered, the wait is not shown as an error");

  // 8. The waterfall marks the route taken.
  const desc = await page.locator("svg#waterfall desc").textContent();
  check(desc.includes("approve → publish"), `the waterfall marks the route taken (${desc})`);
  await docShot(page, "studio-waterfall", "#waterfall-box");

  // 9. Re-run the seeded session, then compare the two runs side by side.
  await page.goto(`${base}/sessions/${seeded}`);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith(seeded)), page.click("#rerun")]);
  await page.waitForFunction(() => document.getElementById("status")?.textContent.trim() === "completed", null, { timeout: 30000 });
  const rerunId = page.url().split("/sessions/")[1];
  check(rerunId && rerunId !== seeded, "re-run starts a new session of the same cascade");
  await page.selectOption("#compare-form select", seeded);
  await Promise.all([page.waitForURL("**/compare?**"), page.click("#compare-form button")]);
  const compared = await page.locator("#compare").innerText();
  check(compared.includes(seeded) && compared.includes(rerunId), "the compare page shows both runs");
  check((await page.locator("#compare-path").innerText()).includes("greet"), "the compare page lines up their paths");
  await docShot(page, "studio-compare", "main");

  // 10. Lists: totals and pages on sessions; invalid cascades marked.
  await page.goto(`${base}/`);
  check((await page.locator("#totals").innerText()).includes("session(s) match"), "the sessions list shows totals");
  await docShot(page, "studio-sessions");
  await page.goto(`${base}/cascades`);
  check((await page.locator("tr.invalid").innerText()).includes("invalid"), "an invalid cascade is marked in the list");
  await docShot(page, "studio-cascades", "main");
  check(errors.length === 0, `no script errors on the new pages (${errors.join("; ")})`);

  // 5. A phone: every page fits the screen's width (tables scroll inside their box, not the page).
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const small = await phone.newPage();
  for (const [name, path] of [
    ["sessions", "/"],
    ["session", `/sessions/${seeded}`],
    ["sql", "/sql"],
    ["costs", "/costs"],
    ["cascades", "/cascades"],
    ["compare", `/compare?a=${seeded}`],
  ]) {
    await small.goto(`${base}${path}`);
    const { scroll, inner } = await small.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }));
    // Against the phone's 390 px, not innerWidth: a page wider than the screen widens innerWidth too.
    check(scroll <= 391 && inner <= 391, `the ${name} page fits a 390 px phone (content ${scroll} px, window ${inner} px)`);
    await shot(small, `phone-${name}`);
  }
} catch (e) {
  failed = true;
  console.error(String(e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
