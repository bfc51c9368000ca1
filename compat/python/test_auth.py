"""Bearer-token authentication, permissions (the family's SecurityEvents.* and the per-set permissions
of tiIndicators and securityActions) and tenant isolation, through the SDK's bearer-token provider.
Skipped, with the reason, until `graphsec token` exists."""

from __future__ import annotations

import pytest
from datetime import datetime, timezone

from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile
from msgraph_beta.generated.models.key_value_pair import KeyValuePair
from msgraph_beta.generated.models.operation_status import OperationStatus
from msgraph_beta.generated.models.security_action import SecurityAction
from msgraph_beta.generated.models.ti_action import TiAction
from msgraph_beta.generated.models.ti_indicator import TiIndicator
from msgraph_beta.generated.models.tlp_level import TlpLevel

from graph_client import make_client
from graphsec_server import (
    READ_ONLY,
    READ_WRITE,
    SECURITY_ACTIONS,
    TENANT_A,
    TENANT_B,
    THREAT_INDICATORS,
    GraphsecServer,
)
from sdk_helpers import raises_odata_error, read_all

pytestmark = pytest.mark.usefixtures("needs_tokens")


async def test_no_token_is_401(server):
    anonymous = make_client(server, None)
    with raises_odata_error(401, "InvalidAuthenticationToken"):
        await anonymous.security.cloud_app_security_profiles.get()


async def test_bad_token_is_401(server):
    forged = make_client(server, "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.not-a-signature")
    with raises_odata_error(401, "InvalidAuthenticationToken"):
        await forged.security.cloud_app_security_profiles.get()


async def test_read_only_token_reads_but_cannot_write(server, marker):
    reader = make_client(server, server.token(TENANT_A, READ_ONLY))
    profiles = reader.security.cloud_app_security_profiles
    page = await profiles.get()
    assert page.value is not None
    with raises_odata_error(403, "Authorization_RequestDenied"):
        await profiles.post(CloudAppSecurityProfile(name=marker))


async def test_application_token_with_role_can_write(server, marker):
    app = make_client(server, server.token(TENANT_A, scope=None, role=READ_WRITE))
    created = await app.security.cloud_app_security_profiles.post(CloudAppSecurityProfile(name=marker))
    assert created.name == marker


async def test_tenants_are_isolated():
    with GraphsecServer() as server:
        a = make_client(server, server.token(TENANT_A, READ_WRITE))
        b = make_client(server, server.token(TENANT_B, READ_WRITE))
        created = await a.security.cloud_app_security_profiles.post(CloudAppSecurityProfile(name="a's"))
        theirs = b.security.cloud_app_security_profiles.by_cloud_app_security_profile_id(created.id)

        assert await read_all(b, await b.security.cloud_app_security_profiles.get()) == []
        assert await b.security.cloud_app_security_profiles.count.get() == 0
        with raises_odata_error(404, "ResourceNotFound"):
            await theirs.get()
        with raises_odata_error(404, "ResourceNotFound"):
            await theirs.patch(CloudAppSecurityProfile(name="b's now"))
        with raises_odata_error(404, "ResourceNotFound"):
            await theirs.delete()

        # Tenant B can even use the same id for its own profile.
        mine = await b.security.cloud_app_security_profiles.post(
            CloudAppSecurityProfile(id=created.id, name="b's")
        )
        assert mine.id == created.id
        ours = await a.security.cloud_app_security_profiles.by_cloud_app_security_profile_id(created.id).get()
        assert ours.name == "a's"


def ti_indicator(marker: str) -> TiIndicator:
    return TiIndicator(
        action=TiAction.Alert,
        description="permission check",
        expiration_date_time=datetime(2027, 3, 1, tzinfo=timezone.utc),
        target_product="Azure Sentinel",
        threat_type="WatchList",
        tlp_level=TlpLevel.Green,
        domain_name="evil.example",
        external_id=marker,
    )


async def test_each_set_needs_the_permission_its_pages_name(server, marker, served_sets):
    if served_sets["tiIndicators"]:
        pytest.skip(served_sets["tiIndicators"])
    # Every tiIndicator page's permission table: "Delegated (work or school account) |
    # ThreatIndicators.ReadWrite.OwnedBy; Application | ThreatIndicators.ReadWrite.OwnedBy".
    # SecurityEvents.ReadWrite.All, which opens the rest of the family, does not open them.
    family = make_client(server, server.token(TENANT_A, READ_WRITE))
    with raises_odata_error(403, "Authorization_RequestDenied") as info:
        await family.security.ti_indicators.get()
    assert THREAT_INDICATORS in info.value.error.message
    with raises_odata_error(403, "Authorization_RequestDenied"):
        await family.security.ti_indicators.post(ti_indicator(marker))
    owner = make_client(server, server.token(TENANT_A, THREAT_INDICATORS))
    created = await owner.security.ti_indicators.post(ti_indicator(marker))
    assert (await owner.security.ti_indicators.by_ti_indicator_id(created.id).get()).external_id == marker
    with raises_odata_error(403, "Authorization_RequestDenied"):  # ... and opens nothing else
        await owner.security.alerts.get()

    # securityaction.md: "Currently security actions only support application permissions"; each
    # operation's table: SecurityActions.Read.All / ReadWrite.All, delegated "Not supported".
    body = SecurityAction(name=marker, parameters=[KeyValuePair(name="IP", value="1.2.3.4")])
    delegated = make_client(server, server.token(TENANT_A, SECURITY_ACTIONS))
    with raises_odata_error(403, "Authorization_RequestDenied"):
        await delegated.security.security_actions.get()
    reader = make_client(server, server.token(TENANT_A, scope=None, role="SecurityActions.Read.All"))
    assert (await reader.security.security_actions.get()).value is not None
    with raises_odata_error(403, "Authorization_RequestDenied"):
        await reader.security.security_actions.post(body)
    writer = make_client(server, server.token(TENANT_A, scope=None, role=SECURITY_ACTIONS))
    action = await writer.security.security_actions.post(body)
    # securityactions-post.md's 201 example: a new action is notStarted; the tenant is the token's.
    assert (action.name, action.status, action.azure_tenant_id) == (marker, OperationStatus.NotStarted, TENANT_A)
