"""An application as it is written for Entra ID and Microsoft Graph, and nothing else: Azure
Identity's `ClientSecretCredential(tenant, client_id, secret)` with no authority and no
`disable_instance_discovery`, and each official SDK's `GraphServiceClient(credential)` with its
default base URL (https://graph.microsoft.com/v1.0, and /beta for the beta SDK). test_proxy.py runs
it in a process of its own whose environment alone sends it to graphsec: HTTPS_PROXY, and
SSL_CERT_FILE / REQUESTS_CA_BUNDLE trusting graphsec's development CA.

    AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET   the application's credentials

It lists the tenant's alerts through both SDKs, gets the first one by id, lists them again with
the asynchronous credential (`azure.identity.aio`, aiohttp underneath, as Microsoft's async samples
write it), and prints one JSON line: {"ok": true, "base_urls": [...], "v1": [titles], "beta":
[titles], "got": title, "aio": [titles]}.
"""

from __future__ import annotations

import asyncio
import json
import os

from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from msgraph import GraphServiceClient
from msgraph_beta import GraphServiceClient as BetaGraphServiceClient


async def main() -> dict:
    tenant, client_id, secret = (
        os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"]
    )
    credential = ClientSecretCredential(tenant, client_id, secret)
    graph = GraphServiceClient(credential)
    beta = BetaGraphServiceClient(credential)
    page = await graph.security.alerts.get()
    beta_page = await beta.security.alerts.get()
    first = await graph.security.alerts.by_alert_id(page.value[0].id).get()
    async with AsyncClientSecretCredential(tenant, client_id, secret) as aio_credential:
        aio_page = await GraphServiceClient(aio_credential).security.alerts.get()
    return {
        "ok": True,
        "base_urls": [graph.request_adapter.base_url, beta.request_adapter.base_url],
        "v1": sorted(a.title for a in page.value),
        "beta": sorted(a.title for a in beta_page.value),
        "got": first.title,
        "aio": sorted(a.title for a in aio_page.value),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
