// End-to-end test of the web chat page in a real browser: Playwright (playwright-core) driving
// Chromium headless against a running `rvbbit serve` with a `kind = "web"` integration whose agent is
// answered by the testkit LLM server.
//
// Run by crates/cli/tests/it/webchat.rs, which starts everything and passes:
//   CHAT_URL        the page (http://127.0.0.1:PORT/chat/NAME)
//   CHAT_TITLE      the integration's title
//   REPLY           the text the model answers every message with
//   RVBBIT_CHROMIUM the Chromium binary (Debian's /usr/bin/chromium)
//   ARTIFACTS       folder for the screenshots (webchat-laptop.png, webchat-phone.png)
//   SCREENSHOTS     (optional) folder for the documentation's copies (docs/img)
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { chromium } from "playwright-core";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env("CHAT_URL");
const title = env("CHAT_TITLE");
const reply = env("REPLY");
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
  await page.screenshot({ path });
  console.log(`screenshot ${path}`);
  if (docsShots) {
    copyFileSync(path, join(docsShots, `${name}.png`));
    console.log(`doc screenshot ${join(docsShots, `${name}.png`)}`);
  }
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

// One width: open the page, write a message, see the agent's reply; the page must not scroll sideways.
const converse = async (label, viewport, options, message) => {
  const context = await browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  page.on("response", (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()} for ${r.url()}`));

  await page.goto(url);
  await page.locator("#status.live").waitFor({ timeout: 20000 });
  check((await page.locator("h1").textContent()) === title, `${label}: the page shows its title`);
  await page.locator("#text").fill(message);
  await page.locator("#send").click();
  const answer = page.locator(".msg.agent").last();
  await answer.waitFor({ timeout: 30000 });
  check((await answer.textContent()) === reply, `${label}: the agent's reply appears`);
  const mine = await page.locator(".msg.visitor").allTextContents();
  check(mine.length === 1 && mine[0] === message, `${label}: the visitor's message is shown once`);
  check((await page.locator("#text").inputValue()) === "", `${label}: the input is cleared after sending`);

  const layout = await page.evaluate(() => {
    const box = (id) => document.getElementById(id).getBoundingClientRect();
    const text = box("text");
    const send = box("send");
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      innerHeight: window.innerHeight,
      inputVisible: text.width > 40 && text.bottom <= window.innerHeight && text.left >= 0,
      sendVisible: send.width > 20 && send.bottom <= window.innerHeight && send.right <= window.innerWidth,
    };
  });
  check(
    layout.scrollWidth <= layout.innerWidth,
    `${label}: no horizontal overflow (${layout.scrollWidth} <= ${layout.innerWidth})`,
  );
  check(layout.inputVisible && layout.sendVisible, `${label}: the input and the send button are on screen`);
  await shot(page, `webchat-${label}`);
  return { context, page, errors };
};

let failed = false;
try {
  const laptop = await converse(
    "laptop",
    { width: 1280, height: 800 },
    {},
    "Hello! What will the weather be like tomorrow?",
  );
  // A reload keeps the conversation: the kept entries come back on the new stream.
  await laptop.page.reload();
  await laptop.page.locator(".msg.agent").first().waitFor({ timeout: 20000 });
  check(
    (await laptop.page.locator(".msg").count()) === 2,
    "laptop: a reload shows the conversation again, without duplicates",
  );
  check(laptop.errors.length === 0, `laptop: no page errors, CSP violations or failed requests ${laptop.errors}`);
  await laptop.context.close();

  const phone = await converse(
    "phone",
    { width: 390, height: 844 },
    { deviceScaleFactor: 2, isMobile: true, hasTouch: true },
    "Hi from my phone",
  );
  // A long word wraps instead of widening the page (the text is set as text: no markup runs).
  const long = "<b>" + "x".repeat(300) + "</b>";
  await phone.page.evaluate(
    (t) => document.getElementById("text").value = t,
    long,
  );
  await phone.page.locator("#send").click();
  const echo = phone.page.locator(".msg.visitor").last();
  await phone.page.waitForFunction((t) => {
    const all = document.querySelectorAll(".msg.visitor");
    return all.length === 2 && all[1].textContent === t;
  }, long);
  check((await echo.locator("b").count()) === 0, "phone: message text is shown as text, never as markup");
  const wide = await phone.page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(wide[0] <= wide[1], `phone: a 300-character word wraps (${wide[0]} <= ${wide[1]})`);
  await phone.page.waitForFunction(() => document.querySelectorAll(".msg.agent").length === 2);
  check(true, "phone: the second message is answered too");
  check(phone.errors.length === 0, `phone: no page errors, CSP violations or failed requests ${phone.errors}`);
  await phone.context.close();

  // Embedding: a page of an allowed origin frames the chat and talks through it; another origin's
  // frame is refused by the page's frame-ancestors. The two sites are served by Playwright itself, so
  // Chromium takes them for public sites framing a loopback server, which its Local Network Access
  // checks block before any policy of ours is read: this browser turns those checks off (a chat
  // served for real is not on loopback).
  const outside = await chromium.launch({
    executablePath: env("RVBBIT_CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-features=LocalNetworkAccessChecks"],
  });
  const site = (origin) => async (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><title>${origin}</title><iframe id="chat" src="${url}" title="chat"
               style="width: 380px; height: 560px; border: 0"></iframe>`,
    });
  const embedded = await outside.newContext({ viewport: { width: 800, height: 700 } });
  await embedded.route("http://site.example/**", site("site.example"));
  const host = await embedded.newPage();
  await host.goto("http://site.example/");
  const frame = host.frameLocator("#chat");
  await frame.locator("#status.live").waitFor({ timeout: 20000 });
  await frame.locator("#text").fill("Hello from an embedded chat");
  await frame.locator("#send").click();
  await frame.locator(".msg.agent").first().waitFor({ timeout: 30000 });
  check(
    (await frame.locator(".msg.agent").first().textContent()) === reply,
    "iframe: a page of an allowed origin embeds the chat and gets the reply",
  );
  await embedded.close();
  const foreign = await outside.newContext();
  await foreign.route("http://evil.example/**", site("evil.example"));
  const evil = await foreign.newPage();
  const refusals = [];
  evil.on("console", (m) => m.text().includes("frame-ancestors") && refusals.push(m.text()));
  await evil.goto("http://evil.example/");
  await evil.waitForTimeout(1500);
  const framed = evil.frames().find((f) => f !== evil.mainFrame());
  const shown = framed ? await framed.locator("#chat").count().catch(() => 0) : 0;
  check(shown === 0 && refusals.length > 0, "iframe: a page of another origin is refused by frame-ancestors");
  await foreign.close();
  await outside.close();
} catch (e) {
  failed = true;
  console.log(`not ok - ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
