"""Fixtures shared by the Python compatibility scenarios.

Servers are real graphsec processes (graphsec_server.py). Clients are the official beta SDK's
GraphServiceClient (graph_client.py), and for `/v1.0` the official v1.0 SDK's (graph_client_v1.py).
When the binary supports dev tokens, every default client authenticates as tenant A with an
application token holding the roles each set's pages require (SecurityEvents.ReadWrite.All,
ThreatIndicators.ReadWrite.OwnedBy for tiIndicators, SecurityActions.ReadWrite.All for
securityActions: graphsec_server.EVERY_SET_ROLES); otherwise graphsec has one default tenant and the
client sends no token. Scenarios that need a feature graphsec lacks are skipped by a
capability probe, with the reason, so they turn on by themselves when the feature lands.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import httpx
import pytest

from graph_client import make_client
from graph_client_v1 import make_v1_client
from graphsec_server import GraphsecServer, capabilities
from sdk_helpers import not_served_reason


@pytest.fixture(scope="session")
def server() -> Iterator[GraphsecServer]:
    """One graphsec for the scenarios that need no special flags; each scenario tags its own
    profiles (see `marker`) so they do not see each other's data."""
    with GraphsecServer() as s:
        yield s


@pytest.fixture
def client(server: GraphsecServer):
    return make_client(server, server.default_token())


@pytest.fixture
def v1_client(server: GraphsecServer):
    """The v1.0 SDK (`msgraph-sdk`) on the same server as `client`, so rows cross versions."""
    return make_v1_client(server, server.default_token())


@pytest.fixture
def marker() -> str:
    """A unique string for this scenario's profile names, so list/filter scenarios on the shared
    server can tell their own profiles from everyone else's."""
    return f"compat-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def query_options_supported(server: GraphsecServer) -> bool:
    """Probe: does graphsec accept OData query options yet? Until the query engine lands, any
    `$top` gets 400 naming the option. The probe uses plain httpx (it is not a scenario)."""
    headers = {}
    token = server.default_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    verify = ssl.create_default_context(cafile=str(server.cert_path)) if server.tls else True
    resp = httpx.get(
        f"{server.version_root}/security/cloudAppSecurityProfiles",
        params={"$top": "1"},
        headers=headers,
        verify=verify,
    )
    return resp.status_code == 200


@pytest.fixture
def needs_query_options(query_options_supported: bool) -> None:
    if not query_options_supported:
        pytest.skip("graphsec answers 400 to OData query options ($top probe): query engine not landed")


@pytest.fixture(scope="session")
def served_sets(server: GraphsecServer) -> dict[str, str | None]:
    """Probe results per entity set of the legacy family: None when `GET /security/{set}?$top=1`
    answers 200, else why the set counts as not served yet. A set that answers something other
    than "not served" (a 500, a 401) fails the probe loudly instead of skipping."""
    results: dict[str, str | None] = {}
    headers = {}
    token = server.default_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    verify = ssl.create_default_context(cafile=str(server.cert_path)) if server.tls else True
    for name in ("alerts", "tiIndicators", "secureScores", "secureScoreControlProfiles"):
        resp = httpx.get(
            f"{server.version_root}/security/{name}", params={"$top": "1"}, headers=headers, verify=verify
        )
        if resp.status_code == 200:
            results[name] = None
            continue
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text
        reason = not_served_reason(resp.status_code, message, f"/security/{name}")
        assert reason, f"GET /security/{name}?$top=1 answered {resp.status_code}: {resp.text}"
        results[name] = reason
    return results


def _needs_set(served_sets: dict[str, str | None], name: str) -> None:
    if served_sets[name]:
        pytest.skip(served_sets[name])


@pytest.fixture
def needs_alerts(served_sets) -> None:
    _needs_set(served_sets, "alerts")


@pytest.fixture
def needs_ti_indicators(served_sets) -> None:
    _needs_set(served_sets, "tiIndicators")


@pytest.fixture
def needs_secure_scores(served_sets) -> None:
    _needs_set(served_sets, "secureScores")


@pytest.fixture
def needs_control_profiles(served_sets) -> None:
    _needs_set(served_sets, "secureScoreControlProfiles")


@pytest.fixture
def needs_tokens() -> None:
    if not capabilities().tokens:
        pytest.skip("`graphsec token --help` fails: bearer-token authentication not landed")


@pytest.fixture(scope="session")
def v1_served(server: GraphsecServer) -> str | None:
    """Probe: None when `GET /v1.0/security/alerts?$top=1` answers 200, else why `/v1.0` counts as
    not served yet (graphsec's 400 for a version root it does not serve). Any other failure of the
    probe fails it loudly instead of skipping."""
    headers = {}
    token = server.default_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    verify = ssl.create_default_context(cafile=str(server.cert_path)) if server.tls else True
    resp = httpx.get(f"{server.v1_root}/security/alerts", params={"$top": "1"}, headers=headers, verify=verify)
    if resp.status_code == 200:
        return None
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text
    assert resp.status_code == 400 and "version" in message.lower(), (
        f"GET /v1.0/security/alerts?$top=1 answered {resp.status_code}: {resp.text}"
    )
    return f"graphsec does not serve /v1.0 yet: {resp.status_code} {message!r}"


@pytest.fixture
def needs_v1(v1_served: str | None) -> None:
    if v1_served:
        pytest.skip(v1_served)
