// secureScores (microsoft.graph.secureScore) through the Graph client's `.api()` chains, as security
// dashboards read them: create (graphsec allows it on every set), get with the open complex
// controlScores keeping their extra members, and lists ordered by a Double with `$top`, followed to
// the end with the client's PageIterator; without $orderby the list is newest first, so `$top=1` is
// the current score (securescore.md). Skipped, with the reason, while graphsec does not serve
// /security/secureScores.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { PageIterator } from "@microsoft/microsoft-graph-client";

import { startServer } from "./graphsec.mjs";
import { LOWERCASE_GUID, SECURE_SCORES, marker, probeServed } from "./helpers.mjs";

// Not monotonic in creation order, so an order by currentScore is not the insertion order.
const CURRENT = [12.5, 40.0, 3.25, 27.0, 33.5];

let server;
let client;
let notServed;
const mark = marker();
let five = [];

before(async () => {
  server = await startServer();
  client = server.client();
  notServed = await probeServed(client, SECURE_SCORES);
  if (notServed) return;
  for (const [i, current] of CURRENT.entries()) {
    five.push(await client.api(SECURE_SCORES).post(score(mark, current, 100 + i)));
  }
});
after(() => server?.stop());

function scoresTest(title, fn) {
  test(title, async (t) => (notServed ? t.skip(notServed) : fn(t)));
}

/** A score as Microsoft Secure Score reports it; azureTenantId (non-null) is the filter key. */
function score(tenant, current, users) {
  return {
    azureTenantId: tenant,
    activeUserCount: users,
    licensedUserCount: users * 2,
    currentScore: current,
    maxScore: 219.0,
    enabledServices: ["HasExchange", "HasSharePoint"],
    averageComparativeScores: [{ basis: "AllTenants", averageScore: 31.87 }],
    // controlScore is an open complex type: real payloads carry undeclared members.
    controlScores: [
      {
        controlCategory: "Identity",
        controlName: "AdminMFAV2",
        description: "Require MFA for administrative roles",
        score: 10.0,
        implementationStatus: "2 of 4 admins",
        scoreInPercentage: 25.5,
      },
    ],
    vendorInformation: { provider: "SecureScore", vendor: "Microsoft" },
  };
}

scoresTest("create and get keep the open controlScores' extra members", async () => {
  const tenant = marker();
  const created = await client.api(SECURE_SCORES).post(score(tenant, 27.5, 120));
  assert.match(created.id, LOWERCASE_GUID);
  assert.equal(created["@odata.type"], "#microsoft.graph.secureScore");
  const got = await client.api(`${SECURE_SCORES}/${created.id}`).get();
  for (const read of [created, got]) {
    assert.deepEqual(
      [read.azureTenantId, read.currentScore, read.maxScore, read.activeUserCount, read.licensedUserCount],
      [tenant, 27.5, 219, 120, 240],
    );
    assert.deepEqual(read.enabledServices, ["HasExchange", "HasSharePoint"]);
    assert.deepEqual(
      read.averageComparativeScores.map(({ basis, averageScore }) => [basis, averageScore]),
      [["AllTenants", 31.87]],
    );
    const [control] = read.controlScores;
    const { "@odata.type": _annotation, ...members } = control;
    assert.deepEqual(members, score(tenant, 0, 0).controlScores[0]);
  }
});

scoresTest("$orderby currentScore desc with $top, then every page", async () => {
  const page = await client.api(SECURE_SCORES).filter(`azureTenantId eq '${mark}'`).orderby("currentScore desc").top(3).get();
  assert.deepEqual(page.value.map((s) => s.currentScore), [40, 33.5, 27]);
  assert.ok(page["@odata.nextLink"], "two more scores remain");
  // The JS PageIterator can only follow https nextLinks (see compat/README.md).
  if (!server.tls) return;
  const all = [];
  await new PageIterator(client, page, (s) => {
    all.push(s);
    return true;
  }).iterate();
  const desc = [...CURRENT].sort((a, b) => b - a);
  assert.deepEqual(all.map((s) => s.currentScore), desc);
  const byScore = new Map(five.map((s) => [s.currentScore, s.id]));
  assert.deepEqual(all.map((s) => s.id), desc.map((c) => byScore.get(c)));
});

scoresTest("without $orderby the list is newest first, so $top=1 is the current score", async () => {
  // securescore.md (beta and v1.0): "This data is sorted by createdDateTime, from latest to
  // earliest. This allows you to page responses by using $top=n." createdDateTime is the server's
  // stamp, in creation order.
  const created = five.map((s) => s.createdDateTime);
  assert.deepEqual(created, [...created].sort());
  assert.equal(new Set(created).size, five.length);
  const page = await client.api(SECURE_SCORES).filter(`azureTenantId eq '${mark}'`).top(1).get();
  assert.deepEqual(page.value.map((s) => s.id), [five.at(-1).id]);
  assert.ok(page["@odata.nextLink"], "older scores remain");
  if (!server.tls) return; // the JS PageIterator follows only https nextLinks
  const all = [];
  await new PageIterator(client, page, (s) => {
    all.push(s.id);
    return true;
  }).iterate();
  assert.deepEqual(all, five.map((s) => s.id).reverse());
});

scoresTest("numeric $filter and a two-key $orderby", async () => {
  // Doubles and Int32s compare numerically, not as text.
  const page = await client
    .api(SECURE_SCORES)
    .filter(`azureTenantId eq '${mark}' and currentScore ge 12.5 and activeUserCount lt 104`)
    .orderby(["maxScore desc", "currentScore"])
    .top(10)
    .get();
  assert.deepEqual(page.value.map((s) => s.currentScore), [12.5, 27, 40]);
  assert.equal(page["@odata.nextLink"], undefined);
});

scoresTest("$select, $count=true and /$count", async () => {
  const page = await client
    .api(SECURE_SCORES)
    .filter(`azureTenantId eq '${mark}'`)
    .select(["currentScore", "controlScores"])
    .count(true)
    .top(2)
    .get();
  assert.equal(page["@odata.count"], 5); // the whole filtered set, not the page
  assert.ok(page["@odata.context"].endsWith("#security/secureScores(currentScore,controlScores)"), page["@odata.context"]);
  for (const s of page.value) {
    assert.deepEqual(Object.keys(s).filter((k) => !k.startsWith("@")).sort(), ["controlScores", "currentScore", "id"]);
  }
  const count = await client.api(`${SECURE_SCORES}/$count`).filter(`azureTenantId eq '${mark}' and currentScore gt 20`).get();
  assert.equal(Number(count), 3);
});
