// Bearer tokens, permissions and tenant isolation. The client sends tokens only over https, so
// these need graphsec's TLS as well as its dev tokens; skipped, with the reason, until both exist.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  READ_ONLY,
  READ_WRITE,
  SECURITY_ACTIONS,
  TENANT_A,
  TENANT_B,
  THREAT_INDICATORS,
  capabilities,
  startServer,
} from "./graphsec.mjs";
import { PROFILES, TI_INDICATORS, marker, rejectsWithGraphError } from "./helpers.mjs";

const missing = !capabilities.tokens
  ? "`graphsec token --help` fails: bearer-token authentication not landed"
  : !capabilities.tls
    ? "graphsec has no --tls-self-signed yet; the JS client attaches tokens only to https URLs"
    : undefined;

let server;
before(async () => {
  if (!missing) server = await startServer();
});
after(() => server?.stop());

function authTest(title, fn) {
  test(title, async (t) => (missing ? t.skip(missing) : fn(t)));
}

authTest("no token is 401 InvalidAuthenticationToken", async () => {
  const anonymous = server.client(null);
  await rejectsWithGraphError(anonymous.api(PROFILES).get(), 401, "InvalidAuthenticationToken");
});

authTest("a bad token is 401 InvalidAuthenticationToken", async () => {
  const forged = server.client("eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.not-a-signature");
  await rejectsWithGraphError(forged.api(PROFILES).get(), 401, "InvalidAuthenticationToken");
});

authTest("a read-only token reads but cannot write (403)", async () => {
  const reader = server.client(server.token(TENANT_A, { scope: READ_ONLY }));
  assert.ok(Array.isArray((await reader.api(PROFILES).get()).value));
  await rejectsWithGraphError(reader.api(PROFILES).post({ name: marker() }), 403, "Authorization_RequestDenied");
});

authTest("tenants are isolated", async () => {
  const a = server.client(server.token(TENANT_A, { scope: READ_WRITE }));
  const b = server.client(server.token(TENANT_B, { scope: READ_WRITE }));
  const created = await a.api(PROFILES).post({ name: marker() });
  const theirs = `${PROFILES}/${created.id}`;

  assert.ok(!(await b.api(PROFILES).get()).value.some((p) => p.id === created.id));
  await rejectsWithGraphError(b.api(theirs).get(), 404, "ResourceNotFound");
  await rejectsWithGraphError(b.api(theirs).patch({ name: "b's now" }), 404, "ResourceNotFound");
  await rejectsWithGraphError(b.api(theirs).delete(), 404, "ResourceNotFound");
  assert.equal((await a.api(theirs).get()).name, created.name);
});

authTest("tiIndicators and securityActions need the permissions their pages name", async () => {
  // Every tiIndicator page: "Delegated (work or school account) | ThreatIndicators.ReadWrite.OwnedBy;
  // Application | ThreatIndicators.ReadWrite.OwnedBy". SecurityEvents.* does not open them.
  const family = server.client(server.token(TENANT_A, { scope: READ_WRITE }));
  const e = await rejectsWithGraphError(family.api(TI_INDICATORS).get(), 403, "Authorization_RequestDenied");
  assert.match(e.message, new RegExp(THREAT_INDICATORS));
  const owner = server.client(server.token(TENANT_A, { scope: THREAT_INDICATORS }));
  const created = await owner.api(TI_INDICATORS).post({
    action: "alert",
    description: "permission check",
    expirationDateTime: "2027-03-01T00:00:00Z",
    targetProduct: "Azure Sentinel",
    threatType: "WatchList",
    tlpLevel: "green",
    domainName: "evil.example",
    externalId: marker(),
  });
  assert.equal((await owner.api(`${TI_INDICATORS}/${created.id}`).get()).id, created.id);
  await rejectsWithGraphError(owner.api(PROFILES).get(), 403, "Authorization_RequestDenied");
  // securityaction.md: "Currently security actions only support application permissions".
  const actions = "/security/securityActions";
  const body = { name: marker(), parameters: [{ name: "IP", value: "1.2.3.4" }] };
  const delegated = server.client(server.token(TENANT_A, { scope: SECURITY_ACTIONS }));
  await rejectsWithGraphError(delegated.api(actions).get(), 403, "Authorization_RequestDenied");
  const reader = server.client(server.token(TENANT_A, { role: "SecurityActions.Read.All" }));
  assert.ok(Array.isArray((await reader.api(actions).get()).value));
  await rejectsWithGraphError(reader.api(actions).post(body), 403, "Authorization_RequestDenied");
  const writer = server.client(server.token(TENANT_A, { role: SECURITY_ACTIONS }));
  const action = await writer.api(actions).post(body);
  // securityactions-post.md's 201 example: a new action is notStarted, in the token's tenant.
  assert.deepEqual([action.name, action.status, action.azureTenantId], [body.name, "NotStarted", TENANT_A]);
});
