// Render a posted pull-request comment body as GitHub does and measure it:
// GitHub-flavoured markdown to HTML (Debian's cmark-gfm), GitHub's stylesheet
// (github-markdown-css), Mermaid blocks drawn by npm's mermaid, in headless Chromium
// (Debian's chromium through puppeteer-core), in a 900 px comment column, foldouts closed.
//
//   node render.mjs BODY.md OUT.png [light|dark] [--open]
//
// Prints one JSON line: {"file", "theme", "height_px", "screens"} (a screen: 900 px tall).
// Not part of `make test` (CI has no node); see docs/notes/i16.md for the recorded numbers.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const [input, output, theme = "light", ...flags] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node render.mjs BODY.md OUT.png [light|dark] [--open]");
  process.exit(2);
}
const COLUMN = 900; // px: the comment column
const SCREEN = 900; // px: one screen of height

const html = execFileSync(
  "cmark-gfm",
  ["--unsafe", "--github-pre-lang", "-e", "table", "-e", "strikethrough", "-e", "autolink",
   "-e", "tagfilter", "-e", "tasklist", input],
  { encoding: "utf8" },
);
const css = readFileSync(
  join(here, "node_modules/github-markdown-css", `github-markdown-${theme}.css`), "utf8");
// MERMAID_JS: another mermaid.min.js (e.g. 10.9 or 12.4) to check the charts render there too.
const mermaid = readFileSync(
  process.env.MERMAID_JS || join(here, "node_modules/mermaid/dist/mermaid.min.js"), "utf8");
const background = theme === "dark" ? "#0d1117" : "#ffffff";

const page = `<!doctype html><html><head><meta charset="utf-8"><style>${css}
body { margin: 0; background: ${background}; }
.markdown-body { box-sizing: border-box; width: ${COLUMN}px; padding: 16px; }
.mermaid-frame { margin-bottom: 16px; }
</style></head><body><article class="markdown-body">${html}</article></body></html>`;

const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
});
try {
  const tab = await browser.newPage();
  await tab.setViewport({ width: COLUMN, height: SCREEN });
  await tab.setContent(page, { waitUntil: "load" });
  await tab.addScriptTag({ content: mermaid });
  const errors = await tab.evaluate(async (dark) => {
    // GitHub draws each ```mermaid block (cmark-gfm: <pre lang="mermaid">) as a diagram.
    window.mermaid.initialize({ startOnLoad: false, theme: dark ? "dark" : "default" });
    const failed = [];
    const blocks = [...document.querySelectorAll('pre[lang="mermaid"]')];
    for (const [i, pre] of blocks.entries()) {
      const source = pre.textContent;
      const frame = document.createElement("div");
      frame.className = "mermaid-frame";
      try {
        const { svg } = await window.mermaid.render(`m${i}`, source);
        frame.innerHTML = svg;
      } catch (err) {
        failed.push(String(err).slice(0, 200));
        frame.textContent = "Unable to render rich display";
      }
      pre.replaceWith(frame);
    }
    return failed;
  }, theme === "dark");
  if (flags.includes("--open")) {
    await tab.evaluate(() => document.querySelectorAll("details").forEach((d) => (d.open = true)));
  }
  const height = await tab.evaluate(
    () => Math.ceil(document.querySelector(".markdown-body").getBoundingClientRect().height));
  await tab.setViewport({ width: COLUMN, height: Math.max(height, 100) });
  await tab.screenshot({ path: output, fullPage: true });
  console.log(JSON.stringify({
    file: input, theme, open: flags.includes("--open"), height_px: height,
    screens: +(height / SCREEN).toFixed(2), mermaid_errors: errors,
  }));
} finally {
  await browser.close();
}
