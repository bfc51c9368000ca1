// Graph errors surface as the client's GraphError with Graph's status and error code.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startServer } from "./graphsec.mjs";
import { PROFILES, marker, rejectsWithGraphError } from "./helpers.mjs";

let server;
let client;
before(async () => {
  server = await startServer();
  client = server.client();
});
after(() => server?.stop());

test("GET, PATCH, DELETE of a missing profile are 404 ResourceNotFound", async () => {
  const item = `${PROFILES}/${marker()}`;
  const e = await rejectsWithGraphError(client.api(item).get(), 404, "ResourceNotFound");
  assert.match(e.message, /compat-js-/);
  await rejectsWithGraphError(client.api(item).patch({ name: "x" }), 404, "ResourceNotFound");
  await rejectsWithGraphError(client.api(item).delete(), 404, "ResourceNotFound");
});

test("a bad enum value is 400 BadRequest", async () => {
  // The spec page's own placeholder body.
  const e = await rejectsWithGraphError(
    client.api(PROFILES).post({ name: marker(), permissionsRequired: "String" }),
    400,
    "BadRequest",
  );
  assert.match(e.message, /permissionsRequired/);
});

test("a wrong JSON type is 400 BadRequest", async () => {
  const e = await rejectsWithGraphError(client.api(PROFILES).post({ isSigned: "yes" }), 400, "BadRequest");
  assert.match(e.message, /isSigned/);
});

test("a duplicate id is 409 Conflict and changes nothing", async () => {
  const id = marker();
  await client.api(PROFILES).post({ id, name: "first" });
  await rejectsWithGraphError(client.api(PROFILES).post({ id, name: "second" }), 409, "Conflict");
  assert.equal((await client.api(`${PROFILES}/${id}`).get()).name, "first");
});
