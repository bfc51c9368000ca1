// OData query options through the client's fluent methods (.filter .select .orderby .top .skip
// .count). Skipped, with the reason, until graphsec's query engine accepts them.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { GraphError } from "@microsoft/microsoft-graph-client";

import { startServer } from "./graphsec.mjs";
import { PROFILES, marker } from "./helpers.mjs";

let server;
let client;
let unsupported; // the skip reason, or undefined when graphsec takes query options
const name = marker();

before(async () => {
  server = await startServer();
  client = server.client();
  try {
    await client.api(PROFILES).top(1).get(); // probe: 400 until the query engine lands
  } catch (e) {
    if (!(e instanceof GraphError && e.statusCode === 400)) throw e;
    unsupported = `graphsec answers 400 to $top (${e.message}): query engine not landed`;
    return;
  }
  // Five profiles: names {name}-0..4, riskScore "4".."0" (reversed), signed when even.
  for (let i = 0; i < 5; i++) {
    await client.api(PROFILES).post({ name: `${name}-${i}`, riskScore: String(4 - i), isSigned: i % 2 === 0 });
  }
});
after(() => server?.stop());

function queryTest(title, fn) {
  test(title, async (t) => (unsupported ? t.skip(unsupported) : fn(t)));
}

queryTest("$filter", async () => {
  const page = await client.api(PROFILES).filter(`startswith(name,'${name}') and isSigned eq true`).get();
  assert.deepEqual(page.value.map((p) => p.name).sort(), [`${name}-0`, `${name}-2`, `${name}-4`]);
});

queryTest("$select", async () => {
  const page = await client.api(PROFILES).filter(`name eq '${name}-1'`).select(["name", "riskScore"]).get();
  assert.equal(page.value.length, 1);
  const [only] = page.value;
  assert.deepEqual(Object.keys(only).filter((k) => !k.startsWith("@")).sort(), ["id", "name", "riskScore"]);
  assert.equal(only.riskScore, "3");
  assert.ok(page["@odata.context"].endsWith("#security/cloudAppSecurityProfiles(name,riskScore)"));
});

queryTest("$orderby", async () => {
  const page = await client.api(PROFILES).filter(`startswith(name,'${name}')`).orderby("riskScore desc").get();
  assert.deepEqual(page.value.map((p) => p.riskScore), ["4", "3", "2", "1", "0"]);
});

queryTest("$count=true with $top and $skip", async () => {
  const page = await client
    .api(PROFILES)
    .filter(`startswith(name,'${name}')`)
    .orderby("name")
    .count(true)
    .top(2)
    .skip(1)
    .get();
  assert.equal(page["@odata.count"], 5); // the whole filtered set, not the page
  assert.deepEqual(page.value.map((p) => p.name), [`${name}-1`, `${name}-2`]);
  assert.ok(page["@odata.nextLink"]);
});
