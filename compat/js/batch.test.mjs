// JSON batching through the client's own batch support (BatchRequestContent /
// BatchResponseContent): create two profiles, then patch one with dependsOn; a failed dependency
// gives 424.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { BatchRequestContent, BatchResponseContent } from "@microsoft/microsoft-graph-client";

import { startServer } from "./graphsec.mjs";
import { PROFILES, marker } from "./helpers.mjs";

let server;
let client;
before(async () => {
  server = await startServer();
  client = server.client();
});
after(() => server?.stop());

/** A batch step as SDK users write it: a fetch Request for the full URL. */
function step(id, method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  return { id, request: new Request(`${server.baseUrl}/beta${path}`, init) };
}

async function runBatch(batch) {
  const content = await batch.getContent();
  return new BatchResponseContent(await client.api("/$batch").post(content));
}

test("create two, then patch one with dependsOn", async () => {
  const name = marker();
  const batch = new BatchRequestContent([
    step("1", "POST", PROFILES, { id: `${name}-a`, name }),
    step("2", "POST", PROFILES, { id: `${name}-b`, name }),
    step("3", "PATCH", `${PROFILES}/${name}-a`, { riskScore: "8" }),
  ]);
  // The client accepts only Graph's dependency shapes (none, serial, same): a serial chain.
  batch.addDependency("2", "1");
  batch.addDependency("3", "2");

  const responses = await runBatch(batch);

  const created = responses.getResponseById("1");
  assert.equal(created.status, 201);
  assert.equal((await created.json()).name, name);
  assert.equal(responses.getResponseById("2").status, 201);
  const patched = responses.getResponseById("3");
  assert.equal(patched.status, 200);
  assert.equal((await patched.json()).riskScore, "8");

  const got = await client.api(`${PROFILES}/${name}-a`).get();
  assert.equal(got.riskScore, "8");
  const page = await client.api(PROFILES).filter(`name eq '${name}'`).get();
  assert.equal(page.value.length, 2);
});

test("a failed dependency gives 424", async () => {
  const name = marker();
  const batch = new BatchRequestContent([
    step("1", "PATCH", `${PROFILES}/${name}-missing`, { name }),
    step("2", "POST", PROFILES, { id: `${name}-never`, name }),
  ]);
  batch.addDependency("2", "1");

  const responses = await runBatch(batch);

  assert.equal(responses.getResponseById("1").status, 404);
  const dependent = responses.getResponseById("2");
  assert.equal(dependent.status, 424);
  assert.equal((await dependent.json()).error.code, "FailedDependency");
  const page = await client.api(PROFILES).filter(`name eq '${name}'`).get();
  assert.equal(page.value.length, 0);
});
