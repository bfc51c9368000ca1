"""Builds the official v1.0 SDK's GraphServiceClient (`msgraph-sdk`, `from msgraph import ...`)
pointed at graphsec's `/v1.0` root: the same three changes to the SDK's defaults as the beta client
in graph_client.py (base URL, trust in graphsec's certificate, a `graphsec token`), built from the
same parts, with the v1.0 SDK's own request adapter, middleware options and `APIVersion.v1`.
"""

from __future__ import annotations

from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as sdk_default_options
from msgraph_core import APIVersion

from graph_client import auth_provider, sdk_http_client
from graphsec_server import GraphsecServer


def make_v1_client(server: GraphsecServer, token: str | None = None) -> GraphServiceClient:
    """A v1.0 GraphServiceClient for `server`; with `token`, every request carries it as a bearer."""
    http = sdk_http_client(server, APIVersion.v1, sdk_default_options)
    adapter = GraphRequestAdapter(auth_provider(server, token), client=http)
    adapter.base_url = server.v1_root
    return GraphServiceClient(request_adapter=adapter)
