"""Create, get, list, update and delete through GraphServiceClient, as SDK users write them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from msgraph_beta.generated.models.application_permissions_required import (
    ApplicationPermissionsRequired,
)
from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile
from msgraph_beta.generated.models.security_vendor_information import SecurityVendorInformation

from graph_client import make_client
from graphsec_server import GraphsecServer
from sdk_helpers import (
    ENTITY_TYPE,
    LOWERCASE_GUID,
    as_data,
    declared,
    full_profile,
    raises_odata_error,
    read_all,
)



def recent(value: datetime | None) -> bool:
    return value is not None and abs(datetime.now(timezone.utc) - value) < timedelta(minutes=5)


async def test_create_with_every_property(client, marker):
    sent = full_profile(marker)
    created = await client.security.cloud_app_security_profiles.post(sent)

    assert created is not None
    assert declared(created) == declared(sent)
    assert created.permissions_required is ApplicationPermissionsRequired.Administrator
    assert LOWERCASE_GUID.match(created.id or ""), created.id
    assert created.odata_type == ENTITY_TYPE
    # Server-managed timestamps: the client's 2017 values are replaced by graphsec's clock.
    assert recent(created.created_date_time), created.created_date_time
    assert created.last_modified_date_time == created.created_date_time
    # The open type keeps the undeclared property, and the SDK surfaces it in additional_data.
    assert created.additional_data.get("customRating") == {"level": 3, "reviewed": True}


async def test_create_with_client_supplied_id(client, marker):
    created = await client.security.cloud_app_security_profiles.post(
        CloudAppSecurityProfile(id=f"{marker}-Id", name=marker)
    )
    assert created.id == f"{marker}-Id"  # kept as sent, case included
    got = await client.security.cloud_app_security_profiles.by_cloud_app_security_profile_id(
        f"{marker}-Id"
    ).get()
    assert got.name == marker


async def test_get_returns_the_created_profile(client, marker):
    profiles = client.security.cloud_app_security_profiles
    created = await profiles.post(full_profile(marker))

    got = await profiles.by_cloud_app_security_profile_id(created.id).get()

    # Whole-object equality: every declared property, the timestamps, @odata.type, the dynamic
    # property and @odata.context (both kept in additional_data) must match the create response.
    assert as_data(got) == as_data(created)


async def test_list_returns_created_profiles(client, marker):
    profiles = client.security.cloud_app_security_profiles
    created = [await profiles.post(full_profile(f"{marker}-{i}")) for i in range(3)]

    page = await profiles.get()

    assert page is not None and page.value is not None
    assert page.additional_data.get("@odata.context", "").endswith("#security/cloudAppSecurityProfiles")
    listed = {p.id: p for p in await read_all(client, page)}
    for want in created:
        got = listed.get(want.id)
        assert got is not None, f"{want.id} missing from the list"
        assert declared(got) == declared(want)
        assert got.created_date_time == want.created_date_time
        assert got.additional_data.get("customRating") == {"level": 3, "reviewed": True}


async def test_patch_a_few_properties(client, marker):
    profiles = client.security.cloud_app_security_profiles
    created = await profiles.post(full_profile(marker))
    item = profiles.by_cloud_app_security_profile_id(created.id)

    # The SDK serialises only the properties that are set: this is a partial update.
    updated = await item.patch(
        CloudAppSecurityProfile(
            risk_score="9",
            tags=["retired"],
            vendor_information=SecurityVendorInformation(provider="MDA"),
        )
    )

    assert updated.risk_score == "9"
    assert updated.tags == ["retired"]  # collections are replaced whole
    # Complex values merge member by member: only provider changed.
    assert declared(updated)["vendor_information"] == as_data(
        SecurityVendorInformation(
            provider="MDA", provider_version="3.0", sub_provider="Defender", vendor="Microsoft"
        ),
        ("backing_store", "odata_type"),
    )
    assert updated.name == marker and updated.is_signed is True  # absent means unchanged
    assert updated.created_date_time == created.created_date_time
    assert updated.last_modified_date_time > created.last_modified_date_time
    assert as_data(await item.get()) == as_data(updated)  # and it was stored


async def test_get_modify_patch_back_whole(client, marker):
    """The common SDK idiom: read an object, change fields on it, send the whole object back.
    The body then carries everything the SDK read, id, timestamps, @odata.type and the
    @odata.context annotation included; graphsec must accept it as an update."""
    profiles = client.security.cloud_app_security_profiles
    created = await profiles.post(full_profile(marker))
    item = profiles.by_cloud_app_security_profile_id(created.id)

    profile = await item.get()
    profile.name = f"{marker}-renamed"
    profile.is_signed = False
    profile.tags = [*profile.tags, "reviewed"]
    profile.vendor_information.sub_provider = "Defender for Cloud Apps"
    profile.permissions_required = ApplicationPermissionsRequired.User
    updated = await item.patch(profile)

    assert updated.name == f"{marker}-renamed"
    assert updated.is_signed is False
    assert updated.tags == ["finance", "pci", "reviewed"]
    assert updated.vendor_information.sub_provider == "Defender for Cloud Apps"
    assert updated.vendor_information.provider == "MCAS"
    assert updated.permissions_required is ApplicationPermissionsRequired.User
    assert updated.id == created.id
    assert updated.created_date_time == created.created_date_time  # sent back, not applied
    assert updated.last_modified_date_time > created.last_modified_date_time
    assert updated.additional_data.get("customRating") == {"level": 3, "reviewed": True}
    assert as_data(await item.get()) == as_data(updated)


async def test_delete(client, marker):
    profiles = client.security.cloud_app_security_profiles
    created = await profiles.post(CloudAppSecurityProfile(name=marker))
    item = profiles.by_cloud_app_security_profile_id(created.id)

    assert await item.delete() is None  # 204, no body

    with raises_odata_error(404, "ResourceNotFound"):
        await item.get()
    listed = await read_all(client, await profiles.get())
    assert created.id not in {p.id for p in listed}


async def test_count_builder():
    # Its own server: the count of a shared one depends on the other scenarios.
    with GraphsecServer() as server:
        client = make_client(server, server.default_token())
        profiles = client.security.cloud_app_security_profiles
        assert await profiles.count.get() == 0
        created = [await profiles.post(CloudAppSecurityProfile(name=f"p{i}")) for i in range(4)]
        assert await profiles.count.get() == 4
        await profiles.by_cloud_app_security_profile_id(created[0].id).delete()
        assert await profiles.count.get() == 3
