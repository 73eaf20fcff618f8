// Makes the README's pictures: the dashboard (task list, a task page, the
// workers page) and `orchardctl watch` in a terminal (tmux, captured and
// drawn as a <pre> page), from a real server and workers on loopback.
//
//   node docs/screenshots.mjs BUILD_DIR      (e.g. build-http; needs tmux, chromium and
//                                             tests/browser's node_modules: npm ci there)
// Writes docs/dashboard-tasks.png, docs/dashboard-task.png,
// docs/dashboard-workers.png and docs/orchardctl-watch.png.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "tests", "browser", "package.json"));
const { chromium } = require("playwright-core");
const build = path.resolve(process.argv[2] || "build");
const bin = (n) => path.join(build, n);
const server = bin("server/orchard-server"), worker = bin("worker/orchard-worker"), ctlBin = bin("cli/orchardctl");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "orchard-shots-"));
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(fn, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { try { const v = await fn(); if (v) return v; } catch {} await delay(100); }
  throw new Error("timed out");
}
const procs = [];
const start = (name, argv) => {
  const out = fs.openSync(path.join(tmp, `${name}.log`), "w");
  const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", out, out] });
  procs.push(p);
  return p;
};
let port;
const ctl = (...a) => execFileSync(ctlBin, ["--server", `127.0.0.1:${port}`, ...a], { encoding: "utf8" }).trim();

start("server", [server, "--listen", "127.0.0.1:0", "--port-file", `${tmp}/p`, "--http", "127.0.0.1:0",
  "--http-port-file", `${tmp}/h`, "--db", `${tmp}/o.db`, "--lease-ttl", "3s"]);
port = Number(await waitFor(() => fs.existsSync(`${tmp}/p`) && fs.readFileSync(`${tmp}/p`, "utf8").trim()));
const http = Number(await waitFor(() => fs.existsSync(`${tmp}/h`) && fs.readFileSync(`${tmp}/h`, "utf8").trim()));
const base = `http://127.0.0.1:${http}`;
for (const n of ["node-1", "node-2"]) start(n, [worker, "--server", `127.0.0.1:${port}`, "--slots", "4", "--name", n]);
await waitFor(async () => (await (await fetch(`${base}/api/v1/workers`)).json()).workers.length === 2);

const sumId = ctl("submit", "--kind", "sum", "--range", "0:1000000", "--subtasks", "100", "--label", "team=data");
const flakyId = ctl("submit", "--kind", "flaky", "--range", "0:1000", "--subtasks", "40", "--params", '{"fail": {"3": -1, "17": 1}}',
  "--max-attempts", "2", "--backoff", "300ms", "--max-failed-subtasks", "0");
await waitFor(async () => (await (await fetch(`${base}/api/v1/tasks/${sumId}`)).json()).task.state === "Terminated");

// orchardctl watch in tmux, captured mid-run.
const watchId = ctl("submit", "--kind", "sleep", "--range", "0:200000", "--subtasks", "160", "--params", '{"ms": 120}');
execFileSync("tmux", ["new-session", "-d", "-s", "orchard-shots", "-x", "210", "-y", "8",
  `${ctlBin} --server 127.0.0.1:${port} watch ${watchId}; sleep 30`]);
await waitFor(async () => {
  const t = (await (await fetch(`${base}/api/v1/tasks/${watchId}`)).json()).task;
  return t.subtasks.succeeded > t.subtasks.total * 0.4;
});
const screen = execFileSync("tmux", ["capture-pane", "-p", "-t", "orchard-shots"], { encoding: "utf8" });
execFileSync("tmux", ["kill-session", "-t", "orchard-shots"]);

const browser = await chromium.launchPersistentContext(`${tmp}/profile`, {
  executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1280, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"] });
const page = browser.pages()[0] || await browser.newPage();
const esc = (s) => s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
await page.setContent(`<body style="margin:0;background:#1d2330"><pre style="margin:0;padding:14px 16px;color:#e6e9ef;
  font:13px/1.35 'DejaVu Sans Mono',monospace;background:#1d2330;display:inline-block">$ orchardctl watch ${watchId}\n${esc(screen.trimEnd())}</pre></body>`);
await (await page.$("pre")).screenshot({ path: path.join(here, "orchardctl-watch.png") });

const bigId = ctl("submit", "--kind", "sleep", "--range", "0:4000", "--subtasks", "4000", "--params", '{"ms": 60}', "--label", "demo=grid");
await page.goto(`${base}/#/tasks/${bigId}`);
await waitFor(async () => {
  const t = (await (await fetch(`${base}/api/v1/tasks/${bigId}`)).json()).task;
  return t.subtasks.succeeded > t.subtasks.total * 0.35;
}, 60000);
await delay(1200);
await page.screenshot({ path: path.join(here, "dashboard-task-running.png") });
await page.goto(`${base}/#/`);
await page.waitForSelector(`tr[data-task="${flakyId}"]`);
await delay(1200);
await page.screenshot({ path: path.join(here, "dashboard-tasks.png") });
await page.goto(`${base}/#/tasks/${flakyId}`);
await waitFor(async () => (await page.getAttribute("#task-badge", "data-state")) === "Error", 30000);
await delay(1200);
await page.screenshot({ path: path.join(here, "dashboard-task.png"), fullPage: true });
await page.goto(`${base}/#/workers`);
await page.waitForSelector("tr[data-worker]");
await delay(1200);
await page.screenshot({ path: path.join(here, "dashboard-workers.png") });
await browser.close();
for (const p of procs.reverse()) p.kill("SIGTERM");
console.log(`wrote docs/*.png (logs in ${tmp})`);
