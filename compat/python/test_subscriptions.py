"""Change notifications for alerts (issue 22) through the official v1.0 SDK (`msgraph-sdk`):
`client.subscriptions` creates, gets, lists, renews (PATCH expirationDateTime), reauthorizes and
deletes a subscription to `security/alerts?$filter=…`, and an alert written through the same SDK
reaches a receiver as Graph's `changeNotificationCollection`.

The receiver is a plain `http.server` on 127.0.0.1 in a thread, answering the validation handshake
(`POST ?validationToken=…` → 200 text/plain with the decoded token) and recording every
notification. graphsec accepts an `http://` receiver on loopback because the suite runs it in
development mode (dev tokens); outside it receivers must be HTTPS. Each scenario filters on its own
`azureTenantId` (the `marker`), so writes by other scenarios on the shared server never match.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from msgraph.generated.models.alert import Alert
from msgraph.generated.models.alert_severity import AlertSeverity
from msgraph.generated.models.alert_status import AlertStatus
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.security_vendor_information import SecurityVendorInformation
from msgraph.generated.models.subscription import Subscription

from graphsec_server import TENANT_A
from sdk_helpers import LOWERCASE_GUID, raises_odata_error

pytestmark = pytest.mark.usefixtures("needs_v1", "needs_alerts")

CLIENT_STATE = "compat-client-state"
# How long a scenario waits for the dispatcher (it polls every 200 ms and is woken by local writes).
DELIVERY_WAIT_S = 30


class Receiver:
    """A webhook receiver on 127.0.0.1:0: answers the handshake, records notification items."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handshakes: list[str] = []
        self.items: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                query = parse_qs(urlparse(self.path).query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "validationToken" in query:
                    token = query["validationToken"][0]
                    with receiver.lock:
                        receiver.handshakes.append(token)
                    data = token.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                try:
                    items = json.loads(body).get("value", [])
                except ValueError:
                    items = []
                with receiver.lock:
                    receiver.items.extend(items)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet: pytest shows failures' output
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}/hook"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def snapshot(self) -> tuple[list[str], list[dict]]:
        with self.lock:
            return list(self.handshakes), list(self.items)

    async def wait_for(self, what: str, pred) -> list[dict]:
        """The received items once `pred(items)` holds; fails after DELIVERY_WAIT_S."""
        loop = asyncio.get_running_loop()
        end = loop.time() + DELIVERY_WAIT_S
        while loop.time() < end:
            _, items = self.snapshot()
            if pred(items):
                return items
            await asyncio.sleep(0.05)
        _, items = self.snapshot()
        raise AssertionError(f"the receiver never got {what} within {DELIVERY_WAIT_S}s: {items}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def in_minutes(minutes: int) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).replace(microsecond=0)


def subscription(resource: str, url: str, minutes: int = 60) -> Subscription:
    return Subscription(
        change_type="created,updated",
        notification_url=url,
        resource=resource,
        expiration_date_time=in_minutes(minutes),
        client_state=CLIENT_STATE,
    )


def alert(marker: str, severity: AlertSeverity) -> Alert:
    return Alert(
        azure_tenant_id=marker,
        title=f"{marker}-{severity.value}",
        category="Malware",
        severity=severity,
        status=AlertStatus.NewAlert,
        vendor_information=SecurityVendorInformation(provider="Windows Defender ATP", vendor="Microsoft"),
    )


def changes(items: list[dict]) -> list[tuple[str, str]]:
    """(changeType, resource) of each change notification (lifecycle ones carry no changeType)."""
    return [(i["changeType"], i["resource"]) for i in items if "changeType" in i]


async def test_create_list_renew_delete_and_notify(v1_client, receiver, marker):
    subs = v1_client.subscriptions
    resource = f"security/alerts?$filter=azureTenantId eq '{marker}' and severity eq 'high'"
    created = await subs.post(subscription(resource, receiver.url))
    assert created is not None and LOWERCASE_GUID.match(created.id or ""), created
    # The handshake happened before the 201, with a token the receiver echoed.
    handshakes, _ = receiver.snapshot()
    assert len(handshakes) == 1 and handshakes[0], handshakes
    assert created.resource == resource
    assert created.change_type == "created,updated"
    assert created.client_state == CLIENT_STATE
    assert created.notification_url == receiver.url
    assert created.latest_supported_tls_version == "v1_2"
    assert created.expiration_date_time is not None
    assert created.additional_data.get("@odata.context", "").endswith("/v1.0/$metadata#subscriptions/$entity")

    got = await subs.by_subscription_id(created.id).get()
    assert (got.id, got.resource, got.client_state) == (created.id, resource, CLIENT_STATE)

    # Lists show the subscription, but never its clientState.
    listed = await subs.get()
    mine = [s for s in listed.value if s.id == created.id]
    assert len(mine) == 1, [s.id for s in listed.value]
    assert mine[0].client_state is None
    assert mine[0].resource == resource

    # Renew: PATCH expirationDateTime; the answer and a later GET carry the new expiry.
    later = in_minutes(120)
    renewed = await subs.by_subscription_id(created.id).patch(Subscription(expiration_date_time=later))
    assert renewed is not None and renewed.expiration_date_time == later, renewed
    got = await subs.by_subscription_id(created.id).get()
    assert got.expiration_date_time == later
    await subs.by_subscription_id(created.id).reauthorize.post()  # 204: the SDK returns None

    # An alert written through the SDK that matches the filter is notified; one that does not, not.
    await v1_client.security.alerts.post(alert(marker, AlertSeverity.Low))
    high = await v1_client.security.alerts.post(alert(marker, AlertSeverity.High))
    items = await receiver.wait_for("the created alert's notification", lambda i: changes(i))
    first = next(i for i in items if "changeType" in i)
    assert first["subscriptionId"] == created.id
    assert first["clientState"] == CLIENT_STATE
    assert first["changeType"] == "created"
    assert first["resource"] == f"security/alerts/{high.id}"
    assert first["resourceData"]["id"] == high.id
    assert first["tenantId"] == TENANT_A
    assert LOWERCASE_GUID.match(first["id"]), first  # stable across retries: receivers dedupe on it

    # An update of the matching alert is notified as `updated`.
    await v1_client.security.alerts.by_alert_id(high.id).patch(
        Alert(
            status=AlertStatus.InProgress,
            vendor_information=SecurityVendorInformation(provider="Windows Defender ATP", vendor="Microsoft"),
        )
    )
    items = await receiver.wait_for("the update's notification", lambda i: len(changes(i)) >= 2)
    assert changes(items) == [
        ("created", f"security/alerts/{high.id}"),
        ("updated", f"security/alerts/{high.id}"),
    ]

    await subs.by_subscription_id(created.id).delete()
    with raises_odata_error(404, "ResourceNotFound", ODataError):
        await subs.by_subscription_id(created.id).get()
    listed = await subs.get()
    assert created.id not in [s.id for s in listed.value]


async def test_refusals_are_odata_errors(v1_client, receiver, marker):
    subs = v1_client.subscriptions
    # Graph refuses a subscription to every alert: it needs a $filter (or one alert's id).
    with raises_odata_error(400, "ExtensionError", ODataError) as info:
        await subs.post(subscription("security/alerts", receiver.url))
    assert "$filter" in info.value.error.message
    # A filter that does not type-check is refused like a GET's.
    with raises_odata_error(400, "BadRequest", ODataError):
        await subs.post(subscription("security/alerts?$filter=status eq 'New'", receiver.url))
    # Only alerts can be subscribed to.
    with raises_odata_error(400, "InvalidRequest", ODataError):
        await subs.post(subscription("users", receiver.url))
    # Beyond the 43,200-minute maximum.
    with raises_odata_error(400, "ExtensionError", ODataError):
        await subs.post(subscription(f"security/alerts/{marker}", receiver.url, minutes=43_200 + 60))
    # The same resource and change types twice: 409 naming the first.
    resource = f"security/alerts?$filter=azureTenantId eq '{marker}'"
    first = await subs.post(subscription(resource, receiver.url))
    with raises_odata_error(409, "Conflict", ODataError) as info:
        await subs.post(subscription(resource, receiver.url))
    assert first.id in info.value.error.message
    await subs.by_subscription_id(first.id).delete()
    with raises_odata_error(404, "ResourceNotFound", ODataError):
        await subs.by_subscription_id(first.id).delete()
