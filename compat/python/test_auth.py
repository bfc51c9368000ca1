"""Bearer-token authentication, permissions and tenant isolation, through the SDK's bearer-token
provider. Skipped, with the reason, until `graphsec token` exists."""

from __future__ import annotations

import pytest
from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile

from graph_client import make_client
from graphsec_server import READ_ONLY, READ_WRITE, TENANT_A, TENANT_B, GraphsecServer
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
