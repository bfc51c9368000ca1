"""secureScores (microsoft.graph.secureScore) through the SDK's `client.security.secure_scores`
builders, as security dashboards read them: create (graphsec allows it on every set, so suites seed
scores this way), get with the open complex `controlScores` keeping their extra members, and a list
ordered by a Double with `$top`, followed across pages by the SDK's PageIterator; `$select`,
`$count=true` and the `/$count` builder; without `$orderby` the list is newest first, so `$top=1`
is the current score (securescore.md). Skipped, with the reason, while graphsec does not serve
`/security/secureScores`.
"""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.average_comparative_score import AverageComparativeScore
from msgraph_beta.generated.models.control_score import ControlScore
from msgraph_beta.generated.models.secure_score import SecureScore
from msgraph_beta.generated.models.security_vendor_information import SecurityVendorInformation
from msgraph_beta.generated.security.secure_scores.count.count_request_builder import CountRequestBuilder
from msgraph_beta.generated.security.secure_scores.secure_scores_request_builder import (
    SecureScoresRequestBuilder,
)

from sdk_helpers import LOWERCASE_GUID, read_all

pytestmark = pytest.mark.usefixtures("needs_secure_scores")

Query = SecureScoresRequestBuilder.SecureScoresRequestBuilderGetQueryParameters
SCORE_TYPE = "#microsoft.graph.secureScore"
# Not monotonic in creation order, so an order by currentScore is not the insertion order.
CURRENT = [12.5, 40.0, 3.25, 27.0, 33.5]


def query(**params) -> RequestConfiguration:
    return RequestConfiguration(query_parameters=Query(**params))


def score(marker: str, current: float, users: int) -> SecureScore:
    """A score as Microsoft Secure Score reports it; azureTenantId (non-null) is this scenario's
    filter key on the shared server."""
    return SecureScore(
        azure_tenant_id=marker,
        active_user_count=users,
        licensed_user_count=users * 2,
        current_score=current,
        max_score=219.0,
        enabled_services=["HasExchange", "HasSharePoint"],
        average_comparative_scores=[AverageComparativeScore(basis="AllTenants", average_score=31.87)],
        control_scores=[
            # controlScore is an open complex type: real payloads carry members the CSDL does not
            # declare, which the SDK keeps in additional_data and graphsec must keep too.
            ControlScore(
                control_category="Identity",
                control_name="AdminMFAV2",
                description="Require MFA for administrative roles",
                score=10.0,
                additional_data={"implementationStatus": "2 of 4 admins", "scoreInPercentage": 25.0},
            )
        ],
        vendor_information=SecurityVendorInformation(provider="SecureScore", vendor="Microsoft"),
    )


async def test_create_and_get_keeps_open_complex_members(client, marker):
    created = await client.security.secure_scores.post(score(marker, 27.5, 120))
    assert created is not None
    assert LOWERCASE_GUID.match(created.id or ""), created.id
    assert created.odata_type == SCORE_TYPE
    got = await client.security.secure_scores.by_secure_score_id(created.id).get()
    for read in (created, got):
        assert (read.azure_tenant_id, read.current_score, read.max_score) == (marker, 27.5, 219.0)
        assert (read.active_user_count, read.licensed_user_count) == (120, 240)
        assert read.enabled_services == ["HasExchange", "HasSharePoint"]
        [avg] = read.average_comparative_scores
        assert (avg.basis, avg.average_score) == ("AllTenants", 31.87)
        [control] = read.control_scores
        assert (control.control_category, control.control_name, control.score) == (
            "Identity",
            "AdminMFAV2",
            10.0,
        )
        extra = {k: v for k, v in control.additional_data.items() if not k.startswith("@")}
        assert extra == {"implementationStatus": "2 of 4 admins", "scoreInPercentage": 25.0}


@pytest.fixture
async def five(client, marker) -> list[SecureScore]:
    return [
        await client.security.secure_scores.post(score(marker, current, 100 + i))
        for i, current in enumerate(CURRENT)
    ]


async def test_default_order_is_newest_first_so_top_1_is_the_current_score(client, marker, five):
    # securescore.md (beta and v1.0): "This data is sorted by createdDateTime, from latest to
    # earliest. This allows you to page responses by using $top=n", and "List secureScores" asks
    # for `$top=1`: the newest snapshot. createdDateTime is the server's stamp, in creation order.
    created = [s.created_date_time for s in five]
    assert created == sorted(created) and len(set(created)) == 5, created
    # The request of Graph's example, unfiltered: the newest score on the server is the last one
    # this scenario created (the suite's scenarios run one after the other).
    page = await client.security.secure_scores.get(query(top=1))
    assert [s.id for s in page.value] == [five[-1].id]
    assert (page.value[0].current_score, page.value[0].azure_tenant_id) == (CURRENT[-1], marker)
    assert page.odata_next_link, "older scores remain"
    # This scenario's scores, two a page: every page, through the SDK's PageIterator, keeps the order.
    page = await client.security.secure_scores.get(query(filter=f"azureTenantId eq '{marker}'", top=2))
    assert [s.id for s in page.value] == [five[4].id, five[3].id]
    everything = await read_all(client, page)
    assert [s.id for s in everything] == [s.id for s in reversed(five)]
    # An explicit $orderby wins over the default order.
    page = await client.security.secure_scores.get(
        query(filter=f"azureTenantId eq '{marker}'", orderby=["createdDateTime asc"], top=1)
    )
    assert [s.id for s in page.value] == [five[0].id]


async def test_list_orderby_current_score_desc_with_top(client, marker, five):
    page = await client.security.secure_scores.get(
        query(filter=f"azureTenantId eq '{marker}'", orderby=["currentScore desc"], top=3)
    )
    assert [s.current_score for s in page.value] == [40.0, 33.5, 27.0]
    assert page.odata_next_link, "two more scores remain"
    # The rest of the order, across pages, through the SDK's own PageIterator.
    everything = await read_all(client, page)
    assert [s.current_score for s in everything] == sorted(CURRENT, reverse=True)
    by_score = {s.current_score: s.id for s in five}
    assert [s.id for s in everything] == [by_score[c] for c in sorted(CURRENT, reverse=True)]


async def test_list_orderby_two_keys_and_numeric_filter(client, marker, five):
    # Doubles and Int32s compare numerically (not as text: "3.25" < "40.0" < "12.5" would be wrong).
    page = await client.security.secure_scores.get(
        query(
            filter=f"azureTenantId eq '{marker}' and currentScore ge 12.5 and activeUserCount lt 104",
            orderby=["maxScore desc", "currentScore"],
            top=10,
        )
    )
    assert [s.current_score for s in page.value] == [12.5, 27.0, 40.0]
    assert page.odata_next_link is None


async def test_select_count_and_the_count_builder(client, marker, five):
    page = await client.security.secure_scores.get(
        query(filter=f"azureTenantId eq '{marker}'", select=["currentScore", "controlScores"], count=True, top=2)
    )
    assert page.odata_count == 5  # the whole filtered set, not the page
    assert page.additional_data["@odata.context"].endswith("#security/secureScores(currentScore,controlScores)")
    for s in page.value:
        assert s.id and s.current_score in CURRENT and s.control_scores[0].control_name == "AdminMFAV2"
        assert s.azure_tenant_id is None and s.max_score is None  # not selected
    count = await client.security.secure_scores.count.get(
        RequestConfiguration(
            query_parameters=CountRequestBuilder.CountRequestBuilderGetQueryParameters(
                filter=f"azureTenantId eq '{marker}' and currentScore gt 20"
            )
        )
    )
    assert count == 3
