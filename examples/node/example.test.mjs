// Example tests against graphsec with graphsec.mjs, on Node's built-in test runner
// (`node --test examples/node/`; run by examples/run).
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";

import { startGraphsec } from "./graphsec.mjs";

const ALERTS = "/v1.0/security/alerts";
const READ_WRITE = "SecurityEvents.ReadWrite.All";
const READ_ONLY = "SecurityEvents.Read.All";

let graphsec;
before(async () => {
  graphsec = await startGraphsec();
});
beforeEach(() => graphsec.reset()); // every test starts with an empty server
after(() => graphsec?.stop());

// azureTenantId, severity and status are required; vendorInformation names the provider.
const newAlert = (tenant, title) => ({
  title,
  azureTenantId: tenant,
  severity: "high",
  status: "newAlert",
  vendorInformation: { provider: "Example SIEM", vendor: "Contoso" },
});

test("create an alert and list it", async () => {
  const token = await graphsec.token("contoso", { roles: [READ_WRITE] }); // an application (roles) token
  const created = await graphsec.request("POST", ALERTS, { token, json: newAlert("contoso", "Suspicious sign-in") });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.ok(created.headers.get("location").includes(created.body.id));

  const listed = await graphsec.request("GET", ALERTS, { token, params: { $filter: "severity eq 'high'" } });
  assert.equal(listed.status, 200);
  // Exactly one: the server was emptied before this test.
  assert.deepEqual(listed.body.value.map((a) => a.title), ["Suspicious sign-in"]);
});

test("tenants are isolated", async () => {
  const contoso = await graphsec.token("contoso", { roles: [READ_WRITE] });
  const fabrikam = await graphsec.token("fabrikam", { roles: [READ_WRITE] });
  const { body: alert } = await graphsec.request("POST", ALERTS, { token: contoso, json: newAlert("contoso", "contoso only") });

  assert.deepEqual((await graphsec.request("GET", ALERTS, { token: fabrikam })).body.value, []);
  assert.equal((await graphsec.request("GET", `${ALERTS}/${alert.id}`, { token: fabrikam })).status, 404);
  assert.equal((await graphsec.request("GET", `${ALERTS}/${alert.id}`, { token: contoso })).status, 200);
});

test("a read-only token cannot write", async () => {
  const reader = await graphsec.token("contoso", { scopes: [READ_ONLY] }); // a delegated (scp) token
  const refused = await graphsec.request("POST", ALERTS, { token: reader, json: newAlert("contoso", "nope") });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, "Authorization_RequestDenied");
  assert.equal((await graphsec.request("GET", ALERTS, { token: reader })).status, 200);
});

test("every test starts empty", async () => {
  const token = await graphsec.token("contoso", { roles: [READ_WRITE] });
  assert.equal((await graphsec.request("GET", `${ALERTS}/$count`, { token })).body, 0);
});
