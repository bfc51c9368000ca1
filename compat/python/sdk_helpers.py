"""Small helpers the scenarios share: a profile with every property set, reading a whole
collection through the SDK's PageIterator, asserting an ODataError, and telling "graphsec does not
serve this yet" (a skip) from a real failure."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import re
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.models.application_permissions_required import (
    ApplicationPermissionsRequired,
)
from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.generated.models.security_vendor_information import SecurityVendorInformation
from msgraph_core import PageIterator

LOWERCASE_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ENTITY_TYPE = "#microsoft.graph.cloudAppSecurityProfile"

# The declared properties a client sets (id and the server-managed timestamps aside).
DECLARED = [
    "azure_subscription_id", "azure_tenant_id", "deployment_package_url",
    "destination_service_name", "is_signed", "manifest", "name", "permissions_required",
    "platform", "policy_name", "publisher", "risk_score", "tags", "type", "vendor_information",
]  # fmt: skip


def as_data(value, drop: tuple[str, ...] = ("backing_store",)):
    """A model as plain data for comparisons. Kiota models are dataclasses whose equality includes
    an in-memory backing store compared by identity, so two equal payloads never compare equal."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: as_data(getattr(value, f.name), drop)
            for f in dataclasses.fields(value)
            if f.name not in drop
        }
    if isinstance(value, list):
        return [as_data(v, drop) for v in value]
    if isinstance(value, dict):
        return {k: as_data(v, drop) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def declared(profile: CloudAppSecurityProfile) -> dict:
    """The declared, client-owned properties. `@odata.type` is dropped: graphsec annotates the
    nested vendorInformation with it, which a model built in code does not carry."""
    return {p: as_data(getattr(profile, p), ("backing_store", "odata_type")) for p in DECLARED}


def full_profile(name: str) -> CloudAppSecurityProfile:
    """Every declared property set, plus a dynamic (open-type) property carried in the SDK's
    additional_data, the way SDK users send properties the model does not declare."""
    return CloudAppSecurityProfile(
        azure_subscription_id="a2a8ab26-5c4d-4bcd-8c1e-6d7a1d1f0b3e",
        azure_tenant_id="b4c2a4a4-1c6e-4a5e-9d36-3e8d0e2f7a11",
        # Server-managed: graphsec must override these with its own clock.
        created_date_time=datetime(2017, 1, 1, 0, 0, 46, tzinfo=timezone.utc),
        last_modified_date_time=datetime(2017, 1, 2, 0, 0, 0, tzinfo=timezone.utc),
        deployment_package_url="https://contoso.example/packages/app.zip",
        destination_service_name="Contoso Cloud",
        is_signed=True,
        manifest="<manifest version='1'/>",
        name=name,
        permissions_required=ApplicationPermissionsRequired.Administrator,
        platform="Windows",
        policy_name="Contoso policy",
        publisher="Contoso Ltd",
        risk_score="7",
        tags=["finance", "pci"],
        type="application",
        vendor_information=SecurityVendorInformation(
            provider="MCAS", provider_version="3.0", sub_provider="Defender", vendor="Microsoft"
        ),
        additional_data={"customRating": {"level": 3, "reviewed": True}},
    )


async def read_all(client: GraphServiceClient, first_page) -> list[CloudAppSecurityProfile]:
    """Every item of a collection, following @odata.nextLink with the SDK's own PageIterator."""
    items: list[CloudAppSecurityProfile] = []

    def keep(item: CloudAppSecurityProfile) -> bool:
        items.append(item)
        return True  # keep iterating

    await PageIterator(first_page, client.request_adapter).iterate(keep)
    return items


@contextlib.contextmanager
def raises_odata_error(
    status: int, code: str, error_type: type[Exception] = ODataError
) -> Iterator[pytest.ExceptionInfo[ODataError]]:
    """Asserts the block raises the SDK's ODataError with this HTTP status and Graph error code,
    and that the SDK could parse the rest of Graph's error envelope. `error_type` is the SDK's own
    class: the beta SDK's by default, `msgraph`'s ODataError for the v1.0 SDK."""
    with pytest.raises(error_type) as info:
        yield info
    err = info.value
    assert err.response_status_code == status, f"status {err.response_status_code}: {err.error}"
    assert err.error is not None, "the SDK could not parse an error object from the body"
    assert err.error.code == code, f"code {err.error.code!r}, message {err.error.message!r}"
    assert err.error.message, "Graph errors carry a human-readable message"
    inner = err.error.inner_error
    assert inner is not None and inner.request_id and inner.date is not None, inner


# What graphsec answers for a path it does not serve: 400 "Resource not found for the segment 'x'."
# (CONTRACT §5), 405 when a collection-bound action's name is taken for a key (POST on an entity),
# or an explicit "not served yet" error while the family is being built.
NOT_SERVED_MESSAGE = re.compile(r"segment|not (yet )?served|not supported|not implemented", re.I)


def not_served_reason(status: int | None, message: str | None, what: str) -> str | None:
    """Why `what` counts as not served yet, from an error's status and message; None when the error
    is a real answer (a served operation refusing the request), which must fail the scenario."""
    message = message or ""
    if status in (405, 501) or (status in (400, 404) and NOT_SERVED_MESSAGE.search(message)):
        return f"graphsec does not serve {what} yet: {status} {message!r}"
    return None


@contextlib.contextmanager
def skip_if_not_served(what: str) -> Iterator[None]:
    """Runs an SDK call of a feature that may not have landed (a bound action): an ODataError that
    says the path is not served skips the scenario with a loud reason; any other error fails it."""
    try:
        yield
    except ODataError as err:
        message = err.error.message if err.error else str(err)
        reason = not_served_reason(err.response_status_code, message, what)
        if reason:
            pytest.skip(reason)
        raise
