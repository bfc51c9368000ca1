"""An unmodified Azure Identity application against graphsec's Entra ID-compatible token service.

`azure-identity`'s `ClientSecretCredential` (MSAL Python underneath) gets its token from graphsec
over HTTPS, and the official beta SDK's own `GraphServiceClient(credentials=..., scopes=...)` uses
it: no token plumbing of ours. What the application changes, as a real one would:

- the credential's `authority` is graphsec's base URL, with `disable_instance_discovery=True`
  (MSAL otherwise asks login.microsoftonline.com to vouch for the authority host, which it
  cannot do for a private one: Azure Identity's documented switch for private clouds);
- the SDK's base URL is graphsec's `/beta` root;
- the trust: graphsec's self-signed certificate through the environment (`SSL_CERT_FILE` for
  httpx, `REQUESTS_CA_BUNDLE` for the requests-based credential), not through code.

Skipped, with the reason, when the binary has no token service (no discovery document).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.models.alert import Alert
from msgraph_beta.generated.models.alert_severity import AlertSeverity
from msgraph_beta.generated.models.alert_status import AlertStatus
from msgraph_beta.generated.models.security_vendor_information import SecurityVendorInformation

from graphsec_server import TENANT_A, TENANT_B, GraphsecServer
from sdk_helpers import raises_odata_error

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
VENDOR = SecurityVendorInformation(provider="compat", vendor="graphsec")


def discovery_available(server: GraphsecServer) -> bool:
    verify = ssl.create_default_context(cafile=str(server.cert_path)) if server.tls else True
    resp = httpx.get(f"{server.base_url}/{TENANT_A}/v2.0/.well-known/openid-configuration", verify=verify)
    return resp.status_code == 200


@pytest.fixture
def trust(monkeypatch) -> Iterator[None]:
    """Trust graphsec's certificate the way an operator would: through the environment."""

    def apply(server: GraphsecServer) -> None:
        if not server.tls:
            pytest.skip("graphsec runs without TLS here; MSAL requires an https authority")
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_path))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))

    yield apply


def credential(server: GraphsecServer, tenant: str, client_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant, client_id, secret, authority=server.base_url, disable_instance_discovery=True
    )


def graph_client(server: GraphsecServer, cred: ClientSecretCredential) -> GraphServiceClient:
    graph = GraphServiceClient(credentials=cred, scopes=[GRAPH_SCOPE])
    graph.request_adapter.base_url = server.version_root
    return graph


def alert(title: str) -> Alert:
    return Alert(
        title=title,
        azure_tenant_id=TENANT_A,
        severity=AlertSeverity.High,
        status=AlertStatus.NewAlert,
        vendor_information=VENDOR,
    )


async def test_client_secret_credential_token_drives_the_official_sdk(trust):
    with GraphsecServer() as server:
        trust(server)
        if not discovery_available(server):
            pytest.skip("graphsec serves no OpenID discovery document: token service not landed")
        cred = credential(server, TENANT_A, "compat-app", "any-secret")
        token = cred.get_token(GRAPH_SCOPE)
        assert token.token.count(".") == 2 and token.expires_on > 0
        graph = graph_client(server, cred)
        created = await graph.security.alerts.post(alert("via azure-identity"))
        assert created.id
        got = await graph.security.alerts.by_alert_id(created.id).get()
        assert got.title == "via azure-identity"
        page = await graph.security.alerts.get()
        assert [a.id for a in page.value] == [created.id]

        # Another tenant, through the same application: its own, empty, view.
        other = graph_client(server, credential(server, TENANT_B, "compat-app", "any-secret"))
        assert (await other.security.alerts.get()).value == []
        with raises_odata_error(404, "ResourceNotFound"):
            await other.security.alerts.by_alert_id(created.id).get()


async def test_app_registrations_decide_secrets_and_roles(trust, tmp_path):
    apps = [
        {"clientId": "reader", "clientSecret": "r-secret", "roles": ["SecurityEvents.Read.All"]},
        {"clientId": "writer", "clientSecret": "w-secret", "tenant": TENANT_A,
         "roles": ["SecurityEvents.ReadWrite.All"]},
    ]
    registrations = tmp_path / "apps.json"
    registrations.write_text(json.dumps(apps))
    with GraphsecServer("--app-registrations", str(registrations)) as server:
        trust(server)
        if not discovery_available(server):
            pytest.skip("graphsec serves no OpenID discovery document: token service not landed")
        writer = graph_client(server, credential(server, TENANT_A, "writer", "w-secret"))
        created = await writer.security.alerts.post(alert("written"))
        reader = graph_client(server, credential(server, TENANT_A, "reader", "r-secret"))
        got = await reader.security.alerts.by_alert_id(created.id).get()
        assert got.title == "written"
        with raises_odata_error(403, "Authorization_RequestDenied"):
            await reader.security.alerts.post(alert("refused"))

        # Entra's errors reach the application as azure-identity reports Entra's.
        with pytest.raises(ClientAuthenticationError) as wrong_secret:
            credential(server, TENANT_A, "writer", "not-it").get_token(GRAPH_SCOPE)
        assert "AADSTS7000215" in str(wrong_secret.value)
        with pytest.raises(ClientAuthenticationError) as other_tenant:
            credential(server, TENANT_B, "writer", "w-secret").get_token(GRAPH_SCOPE)
        assert "AADSTS700016" in str(other_tenant.value)
