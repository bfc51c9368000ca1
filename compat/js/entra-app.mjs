// An application as it is written for Entra ID and Microsoft Graph, configured by its environment
// only: Azure Identity's ClientSecretCredential (MSAL Node underneath) and the Graph JavaScript
// client's own TokenCredentialAuthenticationProvider. entra.test.mjs runs it against graphsec
// with NODE_EXTRA_CA_CERTS trusting graphsec's certificate; it prints one JSON line.
//
//   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET   the application's credentials
//   AZURE_AUTHORITY_HOST                                    graphsec's base URL
//   GRAPH_BASE_URL                                          graphsec's base URL
//   ALERT_TITLE                                             when set, create an alert first

import { ClientSecretCredential } from "@azure/identity";
import { Client } from "@microsoft/microsoft-graph-client";
import { TokenCredentialAuthenticationProvider } from "@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js";

const env = process.env;
const scopes = ["https://graph.microsoft.com/.default"];
const credential = new ClientSecretCredential(env.AZURE_TENANT_ID, env.AZURE_CLIENT_ID, env.AZURE_CLIENT_SECRET, {
  authorityHost: env.AZURE_AUTHORITY_HOST,
  // MSAL asks login.microsoftonline.com about any authority host it does not know; a private
  // authority turns that off (Azure Identity's switch for private clouds).
  disableInstanceDiscovery: true,
});
const client = Client.initWithMiddleware({
  authProvider: new TokenCredentialAuthenticationProvider(credential, { scopes }),
  baseUrl: env.GRAPH_BASE_URL,
  defaultVersion: "beta",
  customHosts: new Set([new URL(env.GRAPH_BASE_URL).hostname]),
});

try {
  let created;
  if (env.ALERT_TITLE) {
    created = await client.api("/security/alerts").post({
      title: env.ALERT_TITLE,
      azureTenantId: env.AZURE_TENANT_ID,
      severity: "high",
      status: "newAlert",
      vendorInformation: { provider: "compat", vendor: "graphsec" },
    });
  }
  const page = await client.api("/security/alerts").get();
  console.log(JSON.stringify({ ok: true, created: created?.id, titles: page.value.map((a) => a.title) }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, statusCode: e.statusCode, code: e.code, message: e.message }));
}
