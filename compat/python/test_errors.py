"""Graph errors surface as the SDK's ODataError with Graph's status and error code."""

from __future__ import annotations

from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile

from sdk_helpers import raises_odata_error


async def test_get_missing_profile_is_404(client, marker):
    item = client.security.cloud_app_security_profiles.by_cloud_app_security_profile_id(marker)
    with raises_odata_error(404, "ResourceNotFound") as info:
        await item.get()
    assert marker in info.value.error.message


async def test_patch_and_delete_missing_profile_are_404(client, marker):
    item = client.security.cloud_app_security_profiles.by_cloud_app_security_profile_id(marker)
    with raises_odata_error(404, "ResourceNotFound"):
        await item.patch(CloudAppSecurityProfile(name="x"))
    with raises_odata_error(404, "ResourceNotFound"):
        await item.delete()


async def test_ids_are_case_sensitive(client, marker):
    profiles = client.security.cloud_app_security_profiles
    await profiles.post(CloudAppSecurityProfile(id=f"{marker}-abc", name=marker))
    with raises_odata_error(404, "ResourceNotFound"):
        await profiles.by_cloud_app_security_profile_id(f"{marker}-ABC").get()


async def test_bad_enum_value_is_400(client, marker):
    # The SDK's enum type cannot hold a wrong value; additional_data is how SDK users send raw
    # JSON, and it is what the spec page's placeholder body ("String") amounts to.
    bad = CloudAppSecurityProfile(name=marker, additional_data={"permissionsRequired": "String"})
    with raises_odata_error(400, "BadRequest") as info:
        await client.security.cloud_app_security_profiles.post(bad)
    assert "permissionsRequired" in info.value.error.message


async def test_wrong_json_type_is_400(client, marker):
    bad = CloudAppSecurityProfile(name=marker, additional_data={"isSigned": "yes"})
    with raises_odata_error(400, "BadRequest") as info:
        await client.security.cloud_app_security_profiles.post(bad)
    assert "isSigned" in info.value.error.message


async def test_duplicate_id_is_409(client, marker):
    profiles = client.security.cloud_app_security_profiles
    await profiles.post(CloudAppSecurityProfile(id=marker, name="first"))
    with raises_odata_error(409, "Conflict"):
        await profiles.post(CloudAppSecurityProfile(id=marker, name="second"))
    got = await profiles.by_cloud_app_security_profile_id(marker).get()
    assert got.name == "first"  # the failed create changed nothing


async def test_patch_ignores_a_foreign_id(client, marker):
    # OData: key values in an update body are ignored (CONTRACT §3 "Changed"); the URL names
    # the entity, and no other one is created or written.
    profiles = client.security.cloud_app_security_profiles
    created = await profiles.post(CloudAppSecurityProfile(name=marker))
    item = profiles.by_cloud_app_security_profile_id(created.id)
    patched = await item.patch(CloudAppSecurityProfile(id=f"{created.id}-other", name="moved"))
    assert (patched.id, patched.name) == (created.id, "moved")
    assert (await item.get()).name == "moved"
    with raises_odata_error(404, "ResourceNotFound"):
        await profiles.by_cloud_app_security_profile_id(f"{created.id}-other").get()
