"""Throttling: the SDK's own retry handler honours graphsec's 429 and its Retry-After.

The server allows one request per 2 s (`--throttle 1/2s`), so a second call right after the first
is throttled (429 TooManyRequests, Retry-After in seconds). The SDK's default middleware retries
it after the delay it was given, and the call succeeds: the raw response (kiota's native response
handler) shows the successful request carried `Retry-Attempt: 1`.
"""

from __future__ import annotations

from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_http.middleware.options import ResponseHandlerOption

from graph_client import make_client
from graphsec_server import GraphsecServer


async def test_a_throttled_call_is_retried_after_retry_after():
    with GraphsecServer("--throttle", "1/2s") as server:
        client = make_client(server, server.default_token())
        profiles = client.security.cloud_app_security_profiles
        await profiles.get()  # spends the bucket
        raw = await profiles.get(
            request_configuration=RequestConfiguration(
                options=[ResponseHandlerOption(NativeResponseHandler())]
            )
        )
        assert raw.status_code == 200
        assert raw.request.headers.get("Retry-Attempt") == "1"
