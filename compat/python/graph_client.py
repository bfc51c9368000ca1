"""Builds the official beta SDK's GraphServiceClient pointed at a graphsec server (graph_client_v1.py
builds the v1.0 SDK's from the same parts).

This is the code a user writes to point the SDK somewhere other than graph.microsoft.com, and
nothing more: the SDK's own request adapter, its own default middleware (retry, redirect, telemetry,
parameter-name decoding...), kiota's own bearer-token provider. Only three things differ from the
SDK's defaults:

- base_url is graphsec's `/beta` root instead of https://graph.microsoft.com/beta (`/v1.0` for v1.0);
- the httpx client trusts graphsec's self-signed certificate (when graphsec runs TLS);
- the token comes from `graphsec token` instead of Entra ID (azure-identity credentials only
  talk to login.microsoftonline.com), via a minimal AccessTokenProvider.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlparse

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    AnonymousAuthenticationProvider,
    AuthenticationProvider,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_http.kiota_client_factory import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.graph_request_adapter import options as sdk_default_options
from msgraph_core import APIVersion, GraphClientFactory

from graphsec_server import GraphsecServer


# The SDK's Azure-identity token provider sends tokens over plain http only to these hosts.
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class StaticTokenProvider(AccessTokenProvider):
    """Hands out one fixed bearer token, only to the allowed host, and only over https (plain http
    only to loopback): the rules the SDK's own Azure-identity provider applies."""

    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] = {}
    ) -> str:
        url = urlparse(uri)
        if url.scheme != "https" and url.hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"refusing to send a bearer token over plain http to {uri}")
        if not self._hosts.is_url_host_valid(uri):
            return ""  # like the SDK: a foreign host gets the request, but not the token
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def auth_provider(server: GraphsecServer, token: str | None) -> AuthenticationProvider:
    """kiota's own bearer-token provider with `token` (anonymous without one)."""
    if token is None:
        return AnonymousAuthenticationProvider()
    return BaseBearerTokenAuthenticationProvider(
        StaticTokenProvider(token, urlparse(server.base_url).hostname or "")
    )


def sdk_http_client(
    server: GraphsecServer, api_version: APIVersion, sdk_options: dict[str, Any]
) -> httpx.AsyncClient:
    """The SDK's own default middleware pipeline over an httpx client that trusts graphsec's
    certificate, exactly as an SDK's GraphRequestAdapter builds it when given no client (with that
    SDK's `api_version` and `options`)."""
    # Same shape as KiotaClientFactory.get_default_client() (timeouts, HTTP/2 allowed), plus trust
    # in graphsec's certificate: the only transport setting a user pointing at graphsec changes.
    verify: ssl.SSLContext | bool = True
    if server.base_url.startswith("https://"):
        verify = ssl.create_default_context(cafile=str(server.cert_path))
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT),
        http2=True,
        verify=verify,
    )
    return GraphClientFactory.create_with_default_middleware(
        api_version=api_version, client=http, options=sdk_options
    )


def make_client(server: GraphsecServer, token: str | None = None) -> GraphServiceClient:
    """A beta GraphServiceClient for `server`; with `token`, every request carries it as a bearer.
    (The v1.0 SDK's client: graph_client_v1.py.)"""
    http = sdk_http_client(server, APIVersion.beta, sdk_default_options)
    adapter = GraphRequestAdapter(auth_provider(server, token), client=http)
    adapter.base_url = server.version_root
    return GraphServiceClient(request_adapter=adapter)
