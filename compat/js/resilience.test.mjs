// Throttling: the client's own RetryHandler honours graphsec's 429 and its Retry-After. The server
// allows one request per 2 s (`--throttle 1/2s`), so a second call right after the first is
// throttled; the default middleware waits the Retry-After it was given and retries, and the call
// succeeds. A shouldRetry callback (the RetryHandler's documented hook, still returning the
// default `true`) records what the handler saw.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { RetryHandlerOptions } from "@microsoft/microsoft-graph-client";

import { startServer } from "./graphsec.mjs";
import { PROFILES } from "./helpers.mjs";

let server;
let client;
before(async () => {
  server = await startServer("--throttle", "1/2s");
  client = server.client();
});
after(() => server?.stop());

test("a throttled call is retried after Retry-After and succeeds", async () => {
  await client.api(PROFILES).get(); // spends the bucket
  const seen = [];
  const observe = new RetryHandlerOptions(undefined, undefined, (_delay, attempt, _req, _opts, res) => {
    seen.push({ attempt, status: res.status, retryAfter: res.headers.get("retry-after") });
    return true;
  });
  const page = await client.api(PROFILES).middlewareOptions([observe]).get();
  assert.ok(Array.isArray(page.value), JSON.stringify(page));
  assert.equal(seen.length, 1, JSON.stringify(seen));
  assert.equal(seen[0].status, 429);
  assert.match(seen[0].retryAfter, /^[12]$/);
});
