// tiIndicators (microsoft.graph.tiIndicator) through the Graph client's `.api()` chains, as
// threat-intelligence platforms (misp2sentinel, Microsoft's security-api-solutions samples) call
// them: create with Graph's required properties, the 400 for a create that lacks one, and the bound
// actions submitTiIndicators (a batch) and deleteTiIndicatorsByExternalId. Skipped, with the
// reason, while graphsec does not serve /security/tiIndicators (and, per test, an action).
//
// Graph's tiIndicator create page: the body needs action, description, expirationDateTime,
// targetProduct, threatType and tlpLevel, and at least one email, file or network observable. The
// resource page (tiindicator.md): severity 0-5 (default 3), isActive true and passiveOnly false by
// default, azureTenantId stamped with the caller's tenant; the update page (tiindicator-update.md):
// 204 No Content (200 with `Prefer: return=representation`), expirationDateTime and targetProduct
// required in every PATCH. The client's token holds ThreatIndicators.ReadWrite.OwnedBy.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { TENANT_A, startServer } from "./graphsec.mjs";
import {
  LOWERCASE_GUID,
  TI_INDICATORS,
  marker,
  probeServed,
  rejectsWithGraphError,
  unlessNotServed,
} from "./helpers.mjs";

const EXPIRES = "2027-03-01T21:44:03.1668987Z";

let server;
let client;
let notServed;

before(async () => {
  server = await startServer();
  client = server.client();
  notServed = await probeServed(client, TI_INDICATORS);
});
after(() => server?.stop());

function tiTest(title, fn) {
  test(title, async (t) => (notServed ? t.skip(notServed) : fn(t)));
}

/** Every required property and one file observable (a SHA-256), like Graph's submit example. */
function indicator(mark, i, overrides = {}) {
  return {
    action: "alert",
    description: `${mark} canary indicator ${i}: take no action`,
    expirationDateTime: EXPIRES,
    targetProduct: "Azure Sentinel",
    threatType: "WatchList",
    tlpLevel: "green",
    externalId: `${mark}-${i}`,
    fileHashType: "sha256",
    fileHashValue: i.toString(16).padStart(64, "0"),
    confidence: 50 + i,
    severity: i, // an Int32 on tiIndicator (an enum on alert), 0-5: i stays within it
    tags: ["canary"],
    ...overrides,
  };
}

/** This scenario's indicators, by externalId. */
async function mine(mark) {
  const page = await client.api(TI_INDICATORS).filter(`startswith(externalId,'${mark}-')`).orderby("externalId").get();
  return page.value;
}

tiTest("create with the required properties and one observable", async () => {
  const mark = marker();
  // Severity 5, the most severe value tiindicator.md allows ("Acceptable values are 0 – 5").
  const created = await client.api(TI_INDICATORS).post(indicator(mark, 5));
  assert.match(created.id, LOWERCASE_GUID);
  assert.equal(created["@odata.type"], "#microsoft.graph.tiIndicator");
  const got = await client.api(`${TI_INDICATORS}/${created.id}`).get();
  for (const read of [created, got]) {
    assert.deepEqual(
      [read.action, read.targetProduct, read.threatType, read.tlpLevel, read.expirationDateTime],
      ["alert", "Azure Sentinel", "WatchList", "green", EXPIRES],
    );
    assert.deepEqual(
      [read.externalId, read.fileHashType, read.fileHashValue, read.confidence, read.severity, read.tags],
      [`${mark}-5`, "sha256", (5).toString(16).padStart(64, "0"), 55, 5, ["canary"]],
    );
  }
});

tiTest("defaults and the values the service sets", async () => {
  // tiindicator.md: isActive "By default, any indicator submitted is set as active", passiveOnly
  // "Default value is false", severity "Default value is 3"; azureTenantId "Stamped by the system
  // when the indicator is ingested" (the token's tenant, whatever the body says); threatType and
  // targetProduct matched ignoring case, stored as the page lists them.
  const mark = marker();
  const { severity: _s, ...body } = indicator(mark, 0, {
    azureTenantId: "someone-else",
    threatType: "phishing",
    targetProduct: "microsoft defender atp",
  });
  const created = await client.api(TI_INDICATORS).post(body);
  const got = await client.api(`${TI_INDICATORS}/${created.id}`).get();
  for (const read of [created, got]) {
    assert.deepEqual(
      [read.isActive, read.passiveOnly, read.severity, read.azureTenantId, read.threatType, read.targetProduct],
      [true, false, 3, TENANT_A, "Phishing", "Microsoft Defender ATP"],
    );
  }
});

for (const [property, value] of [["severity", 6], ["severity", -1], ["confidence", 101], ["targetProduct", "Splunk"], ["threatType", "Ransomware"], ["description", "x".repeat(101)]]) {
  tiTest(`${property} ${JSON.stringify(value).slice(0, 12)} (outside tiindicator.md's rule) is 400 and writes nothing`, async () => {
    const mark = marker();
    const e = await rejectsWithGraphError(client.api(TI_INDICATORS).post(indicator(mark, 0, { [property]: value })), 400, "BadRequest");
    assert.match(e.message, new RegExp(property));
    assert.deepEqual(await mine(mark), []);
  });
}

tiTest("PATCH answers 204, or the indicator with Prefer: return=representation", async () => {
  // tiindicator-update.md: "204 No Content ... If the optional request header is used, the method
  // returns a 200 OK response code and the updated tiIndicator object"; "Required fields are: id,
  // expirationDateTime, targetProduct"; properties outside its table are ignored.
  const mark = marker();
  const created = await client.api(TI_INDICATORS).post(indicator(mark, 1));
  const item = `${TI_INDICATORS}/${created.id}`;
  const later = "2028-03-01T21:44:03.1668987Z";
  const required = { expirationDateTime: later, targetProduct: "Azure Sentinel" };
  const patched = await client.api(item).patch({
    ...required,
    confidence: 90,
    isActive: false,
    fileHashValue: (99).toString(16).padStart(64, "0"), // not updatable: ignored
  });
  assert.equal(patched, undefined, "204 No Content: the client resolves with no body");
  let got = await client.api(item).get();
  assert.deepEqual(
    [got.expirationDateTime, got.confidence, got.isActive, got.fileHashValue, got.severity],
    [later, 90, false, (1).toString(16).padStart(64, "0"), 1],
  );
  const represented = await client.api(item).header("Prefer", "return=representation").patch({ ...required, severity: 0 });
  assert.ok(represented["@odata.context"].endsWith("#security/tiIndicators/$entity"), represented["@odata.context"]);
  assert.deepEqual([represented.id, represented.severity, represented.confidence], [created.id, 0, 90]);
  got = await client.api(item).get();
  assert.deepEqual(got, represented);
  const e = await rejectsWithGraphError(client.api(item).patch({ expirationDateTime: later, severity: 4 }), 400, "BadRequest");
  assert.match(e.message, /targetProduct/);
  assert.equal((await client.api(item).get()).severity, 0);
});

for (const missing of ["tlpLevel", "targetProduct", "expirationDateTime", "action", "description", "threatType"]) {
  tiTest(`create without ${missing} is 400 BadRequest and writes nothing`, async () => {
    const mark = marker();
    const { [missing]: _dropped, ...body } = indicator(mark, 0);
    const e = await rejectsWithGraphError(client.api(TI_INDICATORS).post(body), 400, "BadRequest");
    assert.match(e.message, new RegExp(missing));
    assert.deepEqual(await mine(mark), []);
  });
}

tiTest("create without any observable is 400 BadRequest", async () => {
  const mark = marker();
  const { fileHashType: _t, fileHashValue: _v, ...body } = indicator(mark, 0);
  await rejectsWithGraphError(client.api(TI_INDICATORS).post(body), 400, "BadRequest");
  assert.deepEqual(await mine(mark), []);
});

tiTest("submitTiIndicators creates a batch", async (t) => {
  const mark = marker();
  const batch = { value: [0, 1, 2].map((i) => indicator(mark, i)) };
  const done = await unlessNotServed(t, `POST ${TI_INDICATORS}/submitTiIndicators`, () =>
    client.api(`${TI_INDICATORS}/submitTiIndicators`).post(batch),
  );
  if (!done) return;
  const result = done.value.value;
  assert.deepEqual(result.map((x) => x.externalId), [0, 1, 2].map((i) => `${mark}-${i}`));
  for (const x of result) assert.match(x.id, LOWERCASE_GUID);
  assert.equal(new Set(result.map((x) => x.id)).size, 3);
  const listed = await mine(mark);
  assert.deepEqual(listed.map((x) => [x.id, x.externalId, x.tlpLevel]), result.map((x) => [x.id, x.externalId, "green"]));
});

tiTest("deleteTiIndicatorsByExternalId deletes exactly the named ones", async (t) => {
  const mark = marker();
  const created = [];
  for (const i of [0, 1, 2]) created.push(await client.api(TI_INDICATORS).post(indicator(mark, i)));
  const done = await unlessNotServed(t, `POST ${TI_INDICATORS}/deleteTiIndicatorsByExternalId`, () =>
    client.api(`${TI_INDICATORS}/deleteTiIndicatorsByExternalId`).post({ value: [`${mark}-0`, `${mark}-2`] }),
  );
  if (!done) return;
  // One resultInfo per requested externalId; code is a non-null Int32 in the CSDL.
  assert.equal(done.value.value.length, 2);
  for (const r of done.value.value) assert.equal(typeof r.code, "number", JSON.stringify(r));
  assert.deepEqual((await mine(mark)).map((x) => x.id), [created[1].id]);
  await rejectsWithGraphError(client.api(`${TI_INDICATORS}/${created[0].id}`).get(), 404, "ResourceNotFound");
});

tiTest("partial failures answer per item (206)", async (t) => {
  // Graph: bulk tiIndicator actions answer 206 Partial Content with every item's outcome when some
  // fail; the client takes any 2xx as success. The failed items' shapes are graphsec's
  // (docs/ACTIONS.md; Graph documents none).
  const mark = marker();
  const { tlpLevel: _dropped, ...bad } = indicator(mark, 1);
  const done = await unlessNotServed(t, `POST ${TI_INDICATORS}/submitTiIndicators`, () =>
    client.api(`${TI_INDICATORS}/submitTiIndicators`).post({ value: [indicator(mark, 0), bad, indicator(mark, 2)] }),
  );
  if (!done) return;
  const [ok0, failed, ok2] = done.value.value;
  assert.match(ok0.id, LOWERCASE_GUID);
  assert.match(ok2.id, LOWERCASE_GUID);
  assert.equal(failed.externalId, `${mark}-1`);
  assert.equal(failed["@graphsec.error"]?.code, "BadRequest", JSON.stringify(failed));
  assert.match(failed["@graphsec.error"].message, /tlpLevel/);
  assert.deepEqual((await mine(mark)).map((x) => x.externalId), [`${mark}-0`, `${mark}-2`]);

  const deleted = await client
    .api(`${TI_INDICATORS}/deleteTiIndicatorsByExternalId`)
    .post({ value: [`${mark}-2`, `${mark}-1`] });
  assert.deepEqual(deleted.value.map((r) => r.code), [200, 404]);
  assert.deepEqual((await mine(mark)).map((x) => x.externalId), [`${mark}-0`]);
});
