// Create, get, list, update, delete and /$count through the official JavaScript client.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { GraphsecServer, startServer } from "./graphsec.mjs";
import {
  ENTITY_TYPE,
  LOWERCASE_GUID,
  PROFILES,
  clientOwned,
  fullProfile,
  marker,
  rejectsWithGraphError,
} from "./helpers.mjs";

let server;
let client;
before(async () => {
  server = await startServer();
  client = server.client();
});
after(() => server?.stop());

const recent = (iso) => Math.abs(Date.now() - Date.parse(iso)) < 5 * 60_000;

test("create with every property", async () => {
  const sent = fullProfile(marker());
  const created = await client.api(PROFILES).post(sent);

  assert.deepEqual(clientOwned(created), sent_withoutTimestamps(sent));
  assert.match(created.id, LOWERCASE_GUID);
  assert.equal(created["@odata.type"], ENTITY_TYPE);
  assert.ok(created["@odata.context"].endsWith("#security/cloudAppSecurityProfiles/$entity"));
  // Server-managed: the client's 2017 timestamps are replaced by graphsec's clock.
  assert.ok(recent(created.createdDateTime), created.createdDateTime);
  assert.equal(created.lastModifiedDateTime, created.createdDateTime);
});

function sent_withoutTimestamps(profile) {
  const { createdDateTime: _c, lastModifiedDateTime: _m, ...rest } = profile;
  return rest;
}

test("get returns the created profile", async () => {
  const created = await client.api(PROFILES).post(fullProfile(marker()));
  const got = await client.api(`${PROFILES}/${created.id}`).get();
  assert.deepEqual(got, created);
});

test("list returns created profiles", async () => {
  const name = marker();
  const created = [];
  for (let i = 0; i < 3; i++) created.push(await client.api(PROFILES).post(fullProfile(`${name}-${i}`)));

  const page = await client.api(PROFILES).get();

  assert.ok(page["@odata.context"].endsWith("#security/cloudAppSecurityProfiles"));
  assert.ok(Array.isArray(page.value));
  // The shared server holds far fewer than a page (100) of profiles: one page has them all.
  for (const want of created) {
    const got = page.value.find((p) => p.id === want.id);
    assert.ok(got, `${want.id} missing from the list`);
    assert.deepEqual(clientOwned(got), clientOwned(want));
    assert.equal(got.createdDateTime, want.createdDateTime);
  }
});

test("PATCH a few properties", async () => {
  const name = marker();
  const created = await client.api(PROFILES).post(fullProfile(name));
  const item = `${PROFILES}/${created.id}`;

  const updated = await client.api(item).patch({
    riskScore: "9",
    tags: ["retired"],
    vendorInformation: { provider: "MDA" },
    platform: null,
  });

  assert.equal(updated.riskScore, "9");
  assert.deepEqual(updated.tags, ["retired"]); // collections are replaced whole
  assert.equal(updated.platform, null); // null clears
  assert.deepEqual(clientOwned({ vendorInformation: updated.vendorInformation }).vendorInformation, {
    provider: "MDA",
    providerVersion: "3.0",
    subProvider: "Defender",
    vendor: "Microsoft",
  }); // complex values merge member by member
  assert.equal(updated.name, name); // absent means unchanged
  assert.equal(updated.createdDateTime, created.createdDateTime);
  assert.ok(Date.parse(updated.lastModifiedDateTime) > Date.parse(created.lastModifiedDateTime));
  assert.deepEqual(await client.api(item).get(), updated);
});

test("GET, modify the object, PATCH it back whole", async () => {
  // The body carries everything read: @odata.context, @odata.type, id, timestamps.
  const name = marker();
  const created = await client.api(PROFILES).post(fullProfile(name));
  const item = `${PROFILES}/${created.id}`;

  const profile = await client.api(item).get();
  profile.name = `${name}-renamed`;
  profile.isSigned = false;
  profile.tags.push("reviewed");
  profile.vendorInformation.subProvider = "Defender for Cloud Apps";
  profile.permissionsRequired = "user";
  const updated = await client.api(item).patch(profile);

  assert.equal(updated.name, `${name}-renamed`);
  assert.equal(updated.isSigned, false);
  assert.deepEqual(updated.tags, ["finance", "pci", "reviewed"]);
  assert.equal(updated.vendorInformation.subProvider, "Defender for Cloud Apps");
  assert.equal(updated.vendorInformation.provider, "MCAS");
  assert.equal(updated.permissionsRequired, "user");
  assert.equal(updated.id, created.id);
  assert.equal(updated.createdDateTime, created.createdDateTime); // sent back, not applied
  assert.ok(Date.parse(updated.lastModifiedDateTime) > Date.parse(created.lastModifiedDateTime));
  assert.deepEqual(updated.customRating, { level: 3, reviewed: true });
  assert.deepEqual(await client.api(item).get(), updated);
});

test("delete", async () => {
  const created = await client.api(PROFILES).post({ name: marker() });
  const item = `${PROFILES}/${created.id}`;

  const deleted = await client.api(item).delete();
  assert.equal(deleted, undefined); // 204: the client returns no body

  await rejectsWithGraphError(client.api(item).get(), 404, "ResourceNotFound");
  const page = await client.api(PROFILES).get();
  assert.ok(!page.value.some((p) => p.id === created.id));
});

test("/$count", async () => {
  // Its own server: the shared one's count depends on the other scenarios.
  const own = await new GraphsecServer().start();
  try {
    const c = own.client();
    const count = () => c.api(`${PROFILES}/$count`).get();
    // text/plain: the client hands back the body text, as it does for Graph.
    assert.equal(await count(), "0");
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await c.api(PROFILES).post({ name: `p${i}` })).id);
    assert.equal(await count(), "4");
    await c.api(`${PROFILES}/${ids[0]}`).delete();
    assert.equal(await count(), "3");
  } finally {
    await own.stop();
  }
});
