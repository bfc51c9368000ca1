// Starts real graphsec processes for the JavaScript compatibility suite, and builds the official
// Microsoft Graph JavaScript client pointed at them.
//
// Each server gets its own temporary data directory and a free port (`--listen 127.0.0.1:0`); the
// address comes from the one line graphsec prints on stdout once it accepts connections. What the
// binary can do (TLS, dev tokens) is probed from its --help, so the suite moves to HTTPS and bearer
// tokens by itself once those land, and skips the scenarios that need them until then.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { Client } from "@microsoft/microsoft-graph-client";
import { Agent } from "undici";

const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STARTUP_TIMEOUT_MS = 30_000;

export const TENANT_A = "11111111-1111-4111-8111-111111111111";
export const TENANT_B = "22222222-2222-4222-8222-222222222222";
export const READ_WRITE = "SecurityEvents.ReadWrite.All";
export const READ_ONLY = "SecurityEvents.Read.All";
// Each set's pages: tiIndicators need ThreatIndicators.ReadWrite.OwnedBy (delegated or application;
// SecurityEvents.* does not open them), securityActions the application roles SecurityActions.*
// ("Currently security actions only support application permissions", securityaction.md).
export const THREAT_INDICATORS = "ThreatIndicators.ReadWrite.OwnedBy";
export const SECURITY_ACTIONS = "SecurityActions.ReadWrite.All";
// The suite's default client: an application token (a SIEM/TIP connector) holding every set's
// write role, with a client application id (azp).
export const EVERY_SET_ROLES = [READ_WRITE, THREAT_INDICATORS, SECURITY_ACTIONS];
export const COMPAT_APP_ID = "33333333-3333-4333-8333-333333333333";

export const binary = process.env.GRAPHSEC_BIN ?? join(REPO_DIR, "target", "debug", "graphsec");

function helpText(...args) {
  const done = spawnSync(binary, [...args, "--help"], { encoding: "utf8" });
  return { ok: done.status === 0, text: `${done.stdout}${done.stderr}` };
}

/** What this graphsec binary supports, from its own --help. */
export const capabilities = {
  tls: helpText("serve").text.includes("--tls-self-signed"),
  tokens: helpText("token").ok,
};

export class GraphsecServer {
  constructor(...extraArgs) {
    this.extraArgs = extraArgs;
    this.tls = capabilities.tls;
    this.dataDir = mkdtempSync(join(tmpdir(), "graphsec-compat-js-"));
    this.baseUrl = ""; // e.g. https://127.0.0.1:41234 (no /beta)
    this.log = "";
  }

  /** Starts graphsec and resolves once it printed its listening line. */
  async start() {
    const args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", this.dataDir];
    if (this.tls) args.push("--tls-self-signed");
    args.push(...this.extraArgs);
    this.proc = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr.on("data", (chunk) => (this.log += chunk)); // shown if startup fails

    const lines = createInterface({ input: this.proc.stdout });
    this.baseUrl = await new Promise((resolveUrl, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`graphsec printed no listening line in ${STARTUP_TIMEOUT_MS} ms:\n${this.log}`)),
        STARTUP_TIMEOUT_MS,
      );
      lines.on("line", (line) => {
        const match = /listening on (https?:\/\/\S+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolveUrl(match[1].replace(/\/$/, ""));
        }
      });
      this.proc.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`graphsec exited (${code}) before listening:\n${this.log}`));
      });
    });
    if (this.tls && !existsSync(this.certPath)) {
      throw new Error(`graphsec runs TLS but wrote no certificate at ${this.certPath}`);
    }
    return this;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM"); // graphsec finishes in-flight requests and exits
      // A server that ignores SIGTERM must not hang the suite: SIGKILL after 10 s.
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** The self-signed certificate clients must trust; its place in the data dir is set once, in
   * compat/run (GRAPHSEC_COMPAT_TLS_CERT). */
  get certPath() {
    const rel = process.env.GRAPHSEC_COMPAT_TLS_CERT;
    if (!rel) throw new Error("GRAPHSEC_COMPAT_TLS_CERT is not set: run the suite through compat/run");
    return join(this.dataDir, rel);
  }

  /** A dev token from `graphsec token`: delegated with scope(s), application with role(s) (each a
   * string or an array: the flags repeat), with the client application id `appId` if given. */
  token(tenant, { scope = READ_WRITE, role, appId } = {}) {
    const args = ["token", "--data-dir", this.dataDir, "--tenant", tenant];
    const each = (flag, names) => [names].flat().flatMap((n) => [flag, n]);
    args.push(...(role ? each("--role", role) : each("--scope", scope)));
    if (appId) args.push("--app-id", appId);
    const done = spawnSync(binary, args, { encoding: "utf8" });
    if (done.status !== 0) throw new Error(`graphsec ${args.join(" ")} failed: ${done.stderr}`);
    return done.stdout.trim();
  }

  /** Tenant A, an application token with every set's write role (EVERY_SET_ROLES), once graphsec
   * has tokens; before that, no token (one default tenant). */
  defaultToken() {
    return capabilities.tokens ? this.token(TENANT_A, { role: EVERY_SET_ROLES, appId: COMPAT_APP_ID }) : undefined;
  }

  /** A Graph client for this server, authenticating with `token` (if any). This is what a user
   * writes to point the client away from graph.microsoft.com; nothing else is changed. */
  client(token = this.defaultToken()) {
    const options = {
      // Client.init's callback-style provider, asked for a token for every request the client
      // authenticates. It refuses an empty token, so an anonymous client is one that does not
      // authenticate this host at all: no customHosts below.
      authProvider: (done) => done(null, token),
      baseUrl: this.baseUrl,
      defaultVersion: "beta",
    };
    if (token) {
      // The client attaches the bearer token only to https URLs of Graph hosts or of these.
      options.customHosts = new Set([new URL(this.baseUrl).hostname]);
    }
    if (this.tls) {
      // Node's fetch (undici) trusts only the system CAs; graphsec's certificate is self-signed.
      // The client passes fetchOptions to every fetch call; `dispatcher` is how undici takes a CA.
      options.fetchOptions = {
        dispatcher: new Agent({ connect: { ca: readFileSync(this.certPath) } }),
      };
    }
    return Client.init(options);
  }
}

/** Starts a server for the duration of a test file (node:test before/after hooks). */
export async function startServer(...extraArgs) {
  return new GraphsecServer(...extraArgs).start();
}
