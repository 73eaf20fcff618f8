// The dashboard in a real browser: headless Chromium (Debian's `chromium`)
// driven by playwright-core, against a real orchard-server (with --http) and
// a real orchard-worker on loopback, tasks submitted with orchardctl.
//
// Checks: the list shows a submitted task and its progress rises to done
// without a reload; a failed subtask's error (flaky, fail {"3": -1}, max
// attempts 2) is shown on the task page; each page (list, task, workers) is
// saved as a screenshot under $ORCHARD_ARTIFACT_DIR.
//
// Run by ctest (browser_dashboard, label integration), which passes the
// binaries' paths in ORCHARD_SERVER_BIN, ORCHARD_WORKER_BIN, ORCHARDCTL_BIN.
// Exit 77 (ctest SKIP) only when Chromium is not installed. Every wait polls a
// condition with a deadline; nothing sleeps blindly.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SKIP = 77;
const here = path.dirname(fileURLToPath(import.meta.url));
const chromiumPath = process.env.ORCHARD_CHROMIUM || "/usr/bin/chromium";
const bins = {
  server: process.env.ORCHARD_SERVER_BIN,
  worker: process.env.ORCHARD_WORKER_BIN,
  ctl: process.env.ORCHARDCTL_BIN,
};
const artifacts = process.env.ORCHARD_ARTIFACT_DIR || path.join(os.tmpdir(), "orchard-artifacts");

if (!fs.existsSync(chromiumPath)) {
  console.log(`SKIP: ${chromiumPath} is not installed (Debian package chromium; deploy/install-deps.sh installs it)`);
  process.exit(SKIP);
}
for (const [k, v] of Object.entries(bins)) {
  if (!v || !fs.existsSync(v)) {
    console.error(`error: the ${k} binary is not at '${v}' (set ORCHARD_${k.toUpperCase()}_BIN)`);
    process.exit(1);
  }
}

// playwright-core from npm, installed here once (node_modules is not committed).
if (!fs.existsSync(path.join(here, "node_modules", "playwright-core"))) {
  console.log("installing playwright-core (npm ci) ...");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: here, stdio: "inherit" });
}
const { chromium } = await import("playwright-core");

// ---------------------------------------------------------------- helpers

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (...a) => console.log(`[${elapsed()}]`, ...a);
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` (returning a truthy value when done) until the deadline.
async function waitFor(what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await delay(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "orchard-browser-"));
const procs = [];
function start(name, argv) {
  const out = fs.openSync(path.join(tmp, `${name}.log`), "w");
  const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", out, out] });
  p.name = name;
  procs.push(p);
  return p;
}
function ctl(...args) {
  return execFileSync(bins.ctl, ["--server", `127.0.0.1:${grpcPort}`, ...args], { encoding: "utf8" }).trim();
}

let grpcPort = 0;
let browser;
let failed = false;
fs.mkdirSync(artifacts, { recursive: true });

try {
  // ------------------------------------------------------ server and worker
  const portFile = path.join(tmp, "grpc.port");
  const httpPortFile = path.join(tmp, "http.port");
  start("server", [bins.server, "--listen", "127.0.0.1:0", "--port-file", portFile,
    "--http", "127.0.0.1:0", "--http-port-file", httpPortFile,
    "--db", path.join(tmp, "orchard.db"), "--lease-ttl", "3s"]);
  grpcPort = Number(await waitFor("the gRPC port file", () => fs.existsSync(portFile) && fs.readFileSync(portFile, "utf8").trim()));
  const httpPort = Number(await waitFor("the HTTP port file", () => fs.existsSync(httpPortFile) && fs.readFileSync(httpPortFile, "utf8").trim()));
  const base = `http://127.0.0.1:${httpPort}`;
  log(`server: gRPC ${grpcPort}, dashboard ${base}/`);
  await waitFor("/readyz", async () => (await fetch(`${base}/readyz`)).ok);
  start("worker", [bins.worker, "--server", `127.0.0.1:${grpcPort}`, "--slots", "4", "--name", "browser-node-1"]);
  await waitFor("the worker to register", async () =>
    (await (await fetch(`${base}/api/v1/workers`)).json()).workers.some((w) => w.alive));

  // ------------------------------------------------------------- browser
  // A fresh profile each run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(path.join(tmp, "chromium-profile"), {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] || await browser.newPage();
  page.on("pageerror", (e) => { console.error("page error:", e.message); failed = true; });
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });
  await page.goto(`${base}/`);
  await page.waitForSelector("text=No tasks yet", { timeout: 10000 });
  const loads = navigations;

  // 1. The list shows a submitted task, and its progress rises to done
  //    without a reload.
  const sleepId = ctl("submit", "--kind", "sleep", "--range", "0:24", "--subtasks", "24", "--params", '{"ms": 350}');
  log(`submitted ${sleepId} (sleep: 24 slices of 350 ms on 4 slots)`);
  const row = `tr[data-task="${sleepId}"]`;
  await page.waitForSelector(row, { timeout: 10000 });
  log("the list shows the task");
  const seen = new Set();
  await waitFor("the task's progress to reach 100% in the list", async () => {
    const p = await page.getAttribute(`${row} [data-progress]`, "data-progress");
    seen.add(Number(p));
    const state = await page.getAttribute(row, "data-state");
    return Number(p) === 100 && state === "Terminated";
  }, 30000, 150);
  const values = [...seen].sort((a, b) => a - b);
  log(`progress seen in the list: ${values.join(", ")}%`);
  if (!values.some((v) => v > 0 && v < 100)) throw new Error(`progress never showed a value between 0 and 100: ${values}`);
  if (navigations !== loads) throw new Error("the page reloaded while following the task");
  if (!(await page.textContent(row)).includes("SUCCEEDED")) throw new Error("the finished task is not shown SUCCEEDED");

  // 2. A failing subtask's error on the task page.
  const flakyId = ctl("submit", "--kind", "flaky", "--range", "0:100", "--subtasks", "10",
    "--params", '{"fail": {"3": -1}}', "--max-attempts", "2", "--backoff", "200ms");
  log(`submitted ${flakyId} (flaky: subtask 3 fails every attempt, 2 attempts)`);
  await page.waitForSelector(`tr[data-task="${flakyId}"]`, { timeout: 10000 });
  await page.screenshot({ path: path.join(artifacts, "dashboard-list.png"), fullPage: true });
  await page.click(`tr[data-task="${flakyId}"] a`);
  await page.waitForSelector("#task-page");
  const errRow = 'tr[data-index="3"]';
  await page.waitForSelector(errRow, { timeout: 20000 });
  await waitFor("subtask 3's error after its last attempt", async () => {
    const text = await page.textContent(errRow);
    return text.includes("injected failure") && text.includes("2 of 2") && text.includes("Error");
  }, 20000);
  log(`task page shows: ${(await page.textContent(errRow)).replace(/\s+/g, " ").trim()}`);
  await waitFor("the task to end in Error", async () =>
    (await page.getAttribute("#task-badge", "data-state")) === "Error", 20000);
  const reason = await page.textContent("#reason-text");
  log(`task reason shown: ${reason}`);
  const cells = await page.$$eval("#grid .cell", (els) => els.map((e) => e.dataset.state));
  if (cells.length !== 10 || cells[3] !== "Error" || cells.filter((s) => s === "Terminated").length !== 9) {
    throw new Error(`grid cells are not 9 Terminated and #3 Error: ${cells}`);
  }
  if (!(await page.textContent("#timeline")).includes("Running")) throw new Error("the timeline lacks Running");
  await page.screenshot({ path: path.join(artifacts, "dashboard-task.png"), fullPage: true });

  // 3. The workers page.
  await page.click('a[data-nav="workers"]');
  await page.waitForSelector('tr[data-worker]');
  const wtext = await page.textContent("#workers");
  if (!wtext.includes("browser-node-1") || !wtext.includes("alive") || !wtext.includes("slots in use")) {
    throw new Error(`the workers page lacks the worker: ${wtext}`);
  }
  await page.screenshot({ path: path.join(artifacts, "dashboard-workers.png"), fullPage: true });
  log(`screenshots in ${artifacts}: dashboard-list.png, dashboard-task.png, dashboard-workers.png`);
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
  for (const p of procs) {
    const f = path.join(tmp, `${p.name}.log`);
    if (fs.existsSync(f)) console.error(`--- ${p.name} log (last lines) ---\n${fs.readFileSync(f, "utf8").split("\n").slice(-30).join("\n")}`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const p of procs.reverse()) {
    if (p.exitCode === null) {
      p.kill("SIGTERM");
      await waitFor(`${p.name} to exit`, () => p.exitCode !== null || p.signalCode !== null, 10000, 50)
        .catch(() => p.kill("SIGKILL"));
    }
  }
  if (!failed) fs.rmSync(tmp, { recursive: true, force: true });
  else console.error(`kept ${tmp} for inspection`);
}
console.log(failed ? "0 passed, 1 failed" : "1 passed, 0 failed");
process.exit(failed ? 1 : 0);
