// Runs graphsec for a Node test suite (node:test or any runner): copy this file next to your tests.
// Only Node's standard library (child_process, fetch; Node 20+).
//
//   import { before, after, beforeEach } from "node:test";
//   import { startGraphsec } from "./graphsec.mjs";
//   let graphsec;
//   before(async () => { graphsec = await startGraphsec(); });   // one server per test file
//   beforeEach(() => graphsec.reset());                          // every test starts empty
//   after(() => graphsec.stop());
//
// The server is `graphsec serve --in-memory --listen 127.0.0.1:0` (binary: $GRAPHSEC_BIN, else
// `graphsec` on PATH); its base URL comes from the `graphsec listening on URL` line it prints once
// it accepts connections. Point the code under test at `${graphsec.baseUrl}/v1.0` (or `/beta`) and
// give it a token from `graphsec.token(...)`.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const run = promisify(execFile);
const STARTUP_TIMEOUT_MS = 30_000;
const LISTENING = "graphsec listening on ";

export async function startGraphsec({ bin = process.env.GRAPHSEC_BIN || "graphsec", args = [] } = {}) {
  const adminToken = randomBytes(24).toString("base64url");
  // Passed as one "--admin-token=…" argument: a base64url token may start with "-".
  const proc = spawn(bin, ["serve", "--in-memory", "--listen", "127.0.0.1:0", `--admin-token=${adminToken}`, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = ""; // the server's stderr (startup, access log), shown when startup fails
  proc.stderr.on("data", (chunk) => (log = (log + chunk).slice(-20_000)));
  const killOnExit = () => proc.kill("SIGKILL"); // never outlive the test process
  process.once("exit", killOnExit);

  const baseUrl = await new Promise((resolve, reject) => {
    const fail = (why) => {
      proc.kill("SIGKILL");
      reject(new Error(`graphsec (${bin}) did not start: ${why}\n${log}`));
    };
    const timer = setTimeout(() => fail(`no listening line in ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
    proc.once("error", (e) => {
      clearTimeout(timer);
      fail(e.code === "ENOENT" ? "not found: set GRAPHSEC_BIN or put graphsec on PATH" : e.message);
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      fail(`exited with ${code}`);
    });
    // readline keeps consuming stdout after the line, so the pipe never fills.
    createInterface({ input: proc.stdout }).on("line", (line) => {
      if (line.startsWith(LISTENING)) {
        clearTimeout(timer);
        resolve(line.slice(LISTENING.length).trim().replace(/\/$/, ""));
      }
    });
  });
  proc.removeAllListeners("exit");

  const tokens = new Map();
  const graphsec = {
    baseUrl,
    adminToken,

    /** A token of `tenant` with application `roles` or delegated `scopes` (neither: the
     * SecurityEvents.ReadWrite.All scope), from `graphsec token --url`; cached per server. */
    async token(tenant, { roles = [], scopes = [] } = {}) {
      const key = JSON.stringify([tenant, roles, scopes]);
      if (!tokens.has(key)) {
        const argv = ["token", "--url", baseUrl, "--tenant", tenant];
        for (const r of roles) argv.push("--role", r);
        for (const s of scopes) argv.push("--scope", s);
        tokens.set(key, run(bin, argv, { timeout: 30_000 }).then(({ stdout }) => stdout.trim()));
      }
      return tokens.get(key);
    },

    /** Deletes every entity (of one tenant): POST /_graphsec/reset[?tenant=T]. */
    async reset(tenant) {
      const query = tenant ? `?tenant=${encodeURIComponent(tenant)}` : "";
      const r = await graphsec.request("POST", `/_graphsec/reset${query}`, { token: adminToken });
      if (r.status !== 200) throw new Error(`reset answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body.deleted;
    },

    /** One request to baseUrl + path; resolves to { status, headers, body } (body: parsed JSON or
     * null), whatever the status. `params`: query options, e.g. { $filter: "severity eq 'high'" }. */
    async request(method, path, { token, json, params, headers = {} } = {}) {
      const url = new URL(baseUrl + path);
      for (const [name, value] of Object.entries(params ?? {})) url.searchParams.set(name, value);
      const h = { ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      if (json !== undefined) h["Content-Type"] = "application/json";
      const res = await fetch(url, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
    },

    /** SIGTERM (graphsec finishes in-flight requests and exits 0), SIGKILL after 10 s. */
    async stop() {
      process.removeListener("exit", killOnExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },

    /** The tail of the server's stderr, for a failing test's message. */
    log: () => log,
  };
  return graphsec;
}
