// An unmodified Azure Identity application against graphsec's Entra ID-compatible token service:
// entra-app.mjs (ClientSecretCredential + the Graph client's TokenCredentialAuthenticationProvider)
// runs in its own process, configured by its environment, and trusts graphsec's certificate
// through NODE_EXTRA_CA_CERTS, as a deployed application would. Skipped, with the reason, when
// graphsec serves no OpenID discovery document (no token service).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Agent } from "undici";

import { GraphsecServer, TENANT_A, TENANT_B, capabilities } from "./graphsec.mjs";

const here = new URL(".", import.meta.url).pathname;

/** Runs the application against `server`; its JSON line. */
function runApp(server, { tenant, clientId, secret, title }) {
  const done = spawnSync(process.execPath, [join(here, "entra-app.mjs")], {
    encoding: "utf8",
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: server.certPath,
      AZURE_TENANT_ID: tenant,
      AZURE_CLIENT_ID: clientId,
      AZURE_CLIENT_SECRET: secret,
      AZURE_AUTHORITY_HOST: server.baseUrl,
      GRAPH_BASE_URL: server.baseUrl,
      ...(title ? { ALERT_TITLE: title } : {}),
    },
    timeout: 60_000,
  });
  assert.equal(done.status, 0, done.stderr);
  return JSON.parse(done.stdout.trim().split("\n").pop());
}

async function skipReason(server) {
  if (!capabilities.tls) return "graphsec has no --tls-self-signed; MSAL requires an https authority";
  const resp = await fetch(`${server.baseUrl}/${TENANT_A}/v2.0/.well-known/openid-configuration`, {
    dispatcher: new Agent({ connect: { ca: readFileSync(server.certPath) } }),
  });
  return resp.status === 200 ? undefined : "graphsec serves no OpenID discovery document: token service not landed";
}

test("ClientSecretCredential's token drives the Graph client, per tenant", async (t) => {
  const server = await new GraphsecServer().start();
  try {
    const why = await skipReason(server);
    if (why) return t.skip(why);
    const a = runApp(server, { tenant: TENANT_A, clientId: "js-app", secret: "any", title: "via @azure/identity" });
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.deepEqual(a.titles, ["via @azure/identity"]);
    const b = runApp(server, { tenant: TENANT_B, clientId: "js-app", secret: "any" });
    assert.deepEqual(b, { ok: true, titles: [] });
  } finally {
    await server.stop();
  }
});

test("app registrations: roles decide, a wrong secret is Entra's AADSTS7000215", async (t) => {
  const apps = [
    { clientId: "reader", clientSecret: "r", roles: ["SecurityEvents.Read.All"] },
    { clientId: "writer", clientSecret: "w", roles: ["SecurityEvents.ReadWrite.All"] },
  ];
  const dir = mkdtempSync(join(tmpdir(), "graphsec-compat-apps-"));
  const file = join(dir, "apps.json");
  writeFileSync(file, JSON.stringify(apps));
  const server = await new GraphsecServer("--app-registrations", file).start();
  try {
    const why = await skipReason(server);
    if (why) return t.skip(why);
    assert.equal(runApp(server, { tenant: TENANT_A, clientId: "writer", secret: "w", title: "w" }).ok, true);
    const reader = runApp(server, { tenant: TENANT_A, clientId: "reader", secret: "r", title: "r" });
    assert.equal(reader.ok, false);
    assert.equal(reader.statusCode, 403, JSON.stringify(reader));
    assert.equal(reader.code, "Authorization_RequestDenied");
    const wrong = runApp(server, { tenant: TENANT_A, clientId: "writer", secret: "nope" });
    assert.equal(wrong.ok, false);
    assert.match(wrong.message, /AADSTS7000215/, JSON.stringify(wrong));
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
