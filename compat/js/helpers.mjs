// Shared pieces of the JavaScript scenarios: a profile with every property, and assertions on
// the client's GraphError.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { GraphError } from "@microsoft/microsoft-graph-client";

export const PROFILES = "/security/cloudAppSecurityProfiles";
export const ENTITY_TYPE = "#microsoft.graph.cloudAppSecurityProfile";
export const LOWERCASE_GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A unique name prefix per scenario, so scenarios sharing a server can find their own data. */
export const marker = () => `compat-js-${randomUUID().slice(0, 12)}`;

/** Every declared property plus a dynamic (open-type) one; server-managed timestamps included so
 * graphsec has to override them. */
export function fullProfile(name) {
  return {
    azureSubscriptionId: "a2a8ab26-5c4d-4bcd-8c1e-6d7a1d1f0b3e",
    azureTenantId: "b4c2a4a4-1c6e-4a5e-9d36-3e8d0e2f7a11",
    createdDateTime: "2017-01-01T00:00:46Z",
    lastModifiedDateTime: "2017-01-02T00:00:00Z",
    deploymentPackageUrl: "https://contoso.example/packages/app.zip",
    destinationServiceName: "Contoso Cloud",
    isSigned: true,
    manifest: "<manifest version='1'/>",
    name,
    permissionsRequired: "administrator",
    platform: "Windows",
    policyName: "Contoso policy",
    publisher: "Contoso Ltd",
    riskScore: "7",
    tags: ["finance", "pci"],
    type: "application",
    vendorInformation: { provider: "MCAS", providerVersion: "3.0", subProvider: "Defender", vendor: "Microsoft" },
    customRating: { level: 3, reviewed: true },
  };
}

/** The client-owned properties of a profile (no id, timestamps, annotations). */
export function clientOwned(profile) {
  const out = {};
  for (const [key, value] of Object.entries(profile)) {
    if (key === "id" || key.startsWith("@") || key.endsWith("DateTime")) continue;
    if (key === "vendorInformation" && value) {
      const { "@odata.type": _annotation, ...members } = value;
      out[key] = members;
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Awaits `promise`, asserting it rejects with the client's GraphError of this status and code. */
export async function rejectsWithGraphError(promise, status, code) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof GraphError, `expected a GraphError, got ${error}`);
  assert.equal(error.statusCode, status, `status ${error.statusCode}: ${error.code} ${error.message}`);
  assert.equal(error.code, code, error.message);
  assert.ok(error.message, "Graph errors carry a message");
  assert.ok(error.requestId, "the client reads request-id from innerError");
  assert.ok(error.date instanceof Date && !Number.isNaN(error.date.getTime()), `innerError.date ${error.date}`);
  return error;
}

export const ALERTS = "/security/alerts";
export const TI_INDICATORS = "/security/tiIndicators";
export const SECURE_SCORES = "/security/secureScores";

// What graphsec answers for a path it does not serve: 400 "Resource not found for the segment 'x'."
// (CONTRACT §5), 405 when a collection-bound action's name is taken for a key (POST on an entity),
// or an explicit "not served yet" error while the family is being built.
const NOT_SERVED_MESSAGE = /segment|not (yet )?served|not supported|not implemented/i;

/** Why `what` counts as not served yet, from the client's GraphError; undefined when the error is
 * a real answer (a served operation refusing the request), which must fail the scenario. */
export function notServedReason(error, what) {
  if (!(error instanceof GraphError)) return undefined;
  const { statusCode: status, message = "" } = error;
  if (status === 405 || status === 501 || ([400, 404].includes(status) && NOT_SERVED_MESSAGE.test(message))) {
    return `graphsec does not serve ${what} yet: ${status} ${JSON.stringify(message)}`;
  }
  return undefined;
}

/** Probes `GET {path}?$top=1` once per test file: undefined when served, else the skip reason
 * (printed once, loudly). Any other failure (a 500, a 401) throws: a broken set must not skip. */
export async function probeServed(client, path) {
  try {
    await client.api(path).top(1).get();
    return undefined;
  } catch (e) {
    const reason = notServedReason(e, path);
    if (!reason) throw e;
    console.log(`compat: SKIPPING ${path} scenarios: ${reason}`);
    return reason;
  }
}

/** Runs an action call that may not have landed: "not served" skips the test `t` with the reason
 * (returns undefined), anything else is rethrown. */
export async function unlessNotServed(t, what, call) {
  try {
    return { value: await call() };
  } catch (e) {
    const reason = notServedReason(e, what);
    if (!reason) throw e;
    t.skip(reason);
    return undefined;
  }
}
