"""JSON batching through the SDK's own batch support (msgraph-core's BatchRequestContent and
BatchRequestBuilder, which the beta GraphServiceClient does not expose as `client.batch`): create
two profiles, then patch one with a dependency; a failed dependency gives 424."""

from __future__ import annotations

from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem


async def post_batch(client, batch: BatchRequestContent):
    return await BatchRequestBuilder(client.request_adapter).post(batch_request_content=batch)


def profiles(client):
    return client.security.cloud_app_security_profiles


async def test_create_two_then_patch_one_with_depends_on(client, marker):
    create_a = BatchRequestItem(
        profiles(client).to_post_request_information(
            CloudAppSecurityProfile(id=f"{marker}-a", name=marker)
        ),
        id="1",
    )
    create_b = BatchRequestItem(
        profiles(client).to_post_request_information(
            CloudAppSecurityProfile(id=f"{marker}-b", name=marker)
        ),
        id="2",
    )
    patch_a = BatchRequestItem(
        profiles(client)
        .by_cloud_app_security_profile_id(f"{marker}-a")
        .to_patch_request_information(CloudAppSecurityProfile(risk_score="8")),
        id="3",
        depends_on=[create_a, create_b],
    )
    batch = BatchRequestContent({"1": create_a, "2": create_b, "3": patch_a})

    result = await post_batch(client, batch)

    assert result.get_response_status_codes() == {"1": 201, "2": 201, "3": 200}
    # BatchResponseItem reads `body` with get_bytes_value (base64 text), so the SDK cannot hand
    # back Graph's JSON bodies through response_body(); the profiles are read directly instead.
    assert result.get_response_by_id("3").content_type.startswith("application/json")
    created = await profiles(client).by_cloud_app_security_profile_id(f"{marker}-b").get()
    assert created.name == marker
    got = await profiles(client).by_cloud_app_security_profile_id(f"{marker}-a").get()
    assert got.risk_score == "8"


async def test_a_failed_dependency_gives_424(client, marker):
    missing = BatchRequestItem(
        profiles(client)
        .by_cloud_app_security_profile_id(f"{marker}-missing")
        .to_patch_request_information(CloudAppSecurityProfile(name=marker)),
        id="1",
    )
    dependent = BatchRequestItem(
        profiles(client).to_post_request_information(
            CloudAppSecurityProfile(id=f"{marker}-never", name=marker)
        ),
        id="2",
        depends_on=[missing],
    )
    batch = BatchRequestContent({"1": missing, "2": dependent})

    result = await post_batch(client, batch)

    assert result.get_response_status_codes() == {"1": 404, "2": 424}
    page = await profiles(client).get()
    assert all(p.id != f"{marker}-never" for p in page.value or [])
