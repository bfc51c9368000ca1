"""A real Azure Identity + Microsoft Graph SDK application, unchanged, against `graphsec serve
--https-proxy`: the application (proxy_app.py) keeps Microsoft's URLs (no authority, no
`disable_instance_discovery`, no base URL) and runs in a process of its own whose environment alone
sends it to graphsec:

- HTTPS_PROXY=http://127.0.0.1:PORT (graphsec's plain-HTTP listener);
- SSL_CERT_FILE (httpx: the Graph SDKs) and REQUESTS_CA_BUNDLE (requests: Azure Identity's
  transport) naming graphsec's development CA, `graphsec-dev-ca.pem` in the data directory;
- NO_PROXY for loopback only (never the Microsoft hosts), and no other proxy variable.

MSAL Python knows login.microsoftonline.com, so it skips instance discovery and asks
https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration, then that
document's token endpoint: both through the proxy, answered by graphsec. The SDKs then call
https://graph.microsoft.com/v1.0 and /beta through the proxy too.

The application process loads guard/sitecustomize.py, which refuses every name lookup but
loopback's: a library that ignored HTTPS_PROXY fails the test, naming the host, instead of trying
to reach Microsoft. Skipped, with the reason, when the binary has no --https-proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from graphsec_server import TENANT_A, GraphsecServer, capabilities

HERE = Path(__file__).resolve().parent
CA_FILE = "graphsec-dev-ca.pem"
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def app_environment(server: GraphsecServer, tenant: str) -> dict[str, str]:
    """The machine's environment without any proxy setting of its own, plus the application's."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    ca = str(server.data_dir / CA_FILE)
    env.update(
        HTTPS_PROXY=server.base_url,
        NO_PROXY="localhost,127.0.0.1,::1",
        SSL_CERT_FILE=ca,
        REQUESTS_CA_BUNDLE=ca,
        PYTHONPATH=str(HERE / "guard"),
        AZURE_TENANT_ID=tenant,
        AZURE_CLIENT_ID="proxy-app",
        AZURE_CLIENT_SECRET="any-secret",
    )
    return env


def seed_alert(server: GraphsecServer, title: str) -> str:
    """One alert in tenant A, created directly (not through the proxy) with a dev token."""
    resp = httpx.post(
        f"{server.v1_root}/security/alerts",
        headers={"Authorization": f"Bearer {server.default_token()}"},
        json={
            "title": title,
            "azureTenantId": TENANT_A,
            "severity": "high",
            "status": "newAlert",
            "vendorInformation": {"provider": "compat", "vendor": "graphsec"},
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_an_unmodified_application_reaches_graphsec_through_its_environment_only():
    if not capabilities().https_proxy:
        pytest.skip("graphsec has no --https-proxy")
    with GraphsecServer("--https-proxy", tls=False) as server:
        assert (server.data_dir / CA_FILE).is_file(), "no development CA in the data directory"
        seed_alert(server, "through the proxy")
        done = subprocess.run(
            [sys.executable, str(HERE / "proxy_app.py")],
            env=app_environment(server, TENANT_A),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"{done.stderr}\n--- graphsec's log ---\n{server.log()}"
        result = json.loads(done.stdout.strip().splitlines()[-1])
        # The SDKs kept Microsoft's base URLs (httpx writes them with a trailing slash, so the
        # requests go to /v1.0//security/alerts, which Graph and graphsec take as one slash), and
        # graphsec answered for them.
        assert [u.rstrip("/") for u in result["base_urls"]] == [
            "https://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com/beta",
        ]
        assert result["v1"] == ["through the proxy"]
        assert result["beta"] == ["through the proxy"]
        assert result["got"] == "through the proxy"
        assert result["aio"] == ["through the proxy"]
