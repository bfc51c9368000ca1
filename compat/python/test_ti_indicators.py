"""tiIndicators (microsoft.graph.tiIndicator) through the SDK's `client.security.ti_indicators`
builders, as threat-intelligence platforms use them: create with Graph's required properties, the
400 for a create that lacks one, the bound actions `submitTiIndicators` (a batch) and
`deleteTiIndicatorsByExternalId`. Skipped, with the reason, while graphsec does not serve
`/security/tiIndicators` (and, per scenario, while a bound action is not served).

Graph's tiIndicator create page: the body needs action, description, expirationDateTime,
targetProduct, threatType and tlpLevel, and at least one email, file or network observable. The
resource page (tiindicator.md) adds the value rules graphsec applies (issue 21,
src/model/overlay.json): severity 0-5 (default 3), confidence 0-100, isActive true and passiveOnly
false by default, azureTenantId stamped with the caller's tenant; the update page
(tiindicator-update.md) answers 204 No Content (200 with `Prefer: return=representation`) and
requires expirationDateTime and targetProduct in every PATCH. The suite's token holds
ThreatIndicators.ReadWrite.OwnedBy, the permission every tiIndicator page names.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.file_hash_type import FileHashType
from msgraph_beta.generated.models.ti_action import TiAction
from msgraph_beta.generated.models.ti_indicator import TiIndicator
from msgraph_beta.generated.models.tlp_level import TlpLevel
from msgraph_beta.generated.security.ti_indicators.delete_ti_indicators_by_external_id.delete_ti_indicators_by_external_id_post_request_body import (
    DeleteTiIndicatorsByExternalIdPostRequestBody,
)
from msgraph_beta.generated.security.ti_indicators.submit_ti_indicators.submit_ti_indicators_post_request_body import (
    SubmitTiIndicatorsPostRequestBody,
)
from msgraph_beta.generated.security.ti_indicators.ti_indicators_request_builder import (
    TiIndicatorsRequestBuilder,
)

from graphsec_server import TENANT_A
from sdk_helpers import LOWERCASE_GUID, as_data, raises_odata_error, skip_if_not_served

pytestmark = pytest.mark.usefixtures("needs_ti_indicators")

Query = TiIndicatorsRequestBuilder.TiIndicatorsRequestBuilderGetQueryParameters
INDICATOR_TYPE = "#microsoft.graph.tiIndicator"
EXPIRES = datetime(2027, 3, 1, 21, 44, 3, 166898, tzinfo=timezone.utc)


def query(**params) -> RequestConfiguration:
    return RequestConfiguration(query_parameters=Query(**params))


def indicator(marker: str, i: int, **overrides) -> TiIndicator:
    """An indicator with every required property and one file observable (a SHA-256), shaped like
    the Azure Sentinel submissions in Graph's submitTiIndicators example."""
    fields = dict(
        action=TiAction.Alert,
        description=f"{marker} canary indicator {i}: take no action",
        expiration_date_time=EXPIRES,
        target_product="Azure Sentinel",
        threat_type="WatchList",
        tlp_level=TlpLevel.Green,
        external_id=f"{marker}-{i}",
        file_hash_type=FileHashType.Sha256,
        file_hash_value=f"{i:064x}",
        confidence=50 + i,
        severity=i,  # an Int32 on tiIndicator (an enum on alert), 0-5: i stays within it
        tags=["canary"],
    )
    fields.update(overrides)
    return TiIndicator(**fields)


async def mine(client, marker: str) -> list[TiIndicator]:
    page = await client.security.ti_indicators.get(
        query(filter=f"startswith(externalId,'{marker}-')", orderby=["externalId"])
    )
    return page.value


async def test_create_with_the_required_properties(client, marker):
    # Severity 5, the most severe value tiindicator.md allows ("Acceptable values are 0 – 5").
    created = await client.security.ti_indicators.post(indicator(marker, 5))
    assert created is not None
    assert LOWERCASE_GUID.match(created.id or ""), created.id
    assert created.odata_type == INDICATOR_TYPE
    got = await client.security.ti_indicators.by_ti_indicator_id(created.id).get()
    for read in (created, got):
        assert (read.action, read.target_product, read.threat_type, read.tlp_level) == (
            TiAction.Alert,
            "Azure Sentinel",
            "WatchList",
            TlpLevel.Green,
        )
        assert read.description == f"{marker} canary indicator 5: take no action"
        assert read.expiration_date_time == EXPIRES
        assert (read.file_hash_type, read.file_hash_value) == (FileHashType.Sha256, f"{5:064x}")
        assert (read.external_id, read.confidence, read.severity, read.tags) == (f"{marker}-5", 55, 5, ["canary"])
        # "ingestedDateTime: stamped when the indicator is ingested into the system" (Graph).
        assert read.ingested_date_time is not None and read.ingested_date_time > EXPIRES.replace(year=2025)


async def test_defaults_and_the_values_the_service_sets(client, marker):
    # tiindicator.md: isActive "By default, any indicator submitted is set as active", passiveOnly
    # "Default value is false", severity "Default value is 3"; azureTenantId "Stamped by the system
    # when the indicator is ingested. The Microsoft Entra tenant id of submitting client": a value
    # in the body is replaced by the token's tenant. threatType and targetProduct are matched
    # ignoring case and stored as the page lists them.
    sent = indicator(marker, 0, severity=None, azure_tenant_id="someone-else", threat_type="phishing",
                     target_product="microsoft defender atp")  # fmt: skip
    assert (sent.is_active, sent.passive_only, sent.severity) == (None, None, None)  # not sent at all
    created = await client.security.ti_indicators.post(sent)
    got = await client.security.ti_indicators.by_ti_indicator_id(created.id).get()
    for read in (created, got):
        assert (read.is_active, read.passive_only, read.severity) == (True, False, 3)
        assert read.azure_tenant_id == TENANT_A
        assert (read.threat_type, read.target_product) == ("Phishing", "Microsoft Defender ATP")
    listed = await client.security.ti_indicators.get(
        query(filter=f"externalId eq '{marker}-0' and isActive eq true and severity eq 3")
    )
    assert [t.id for t in listed.value] == [created.id]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("severity", 6, "severity"),  # tiindicator.md: "Acceptable values are 0 – 5"
        ("severity", -1, "severity"),
        ("confidence", 101, "confidence"),  # "Acceptable values are 0 – 100"
        ("target_product", "Splunk", "targetProduct"),  # "Azure Sentinel, Microsoft Defender ATP"
        ("threat_type", "Ransomware", "threatType"),  # "Botnet, C2, CryptoMining, ..., WatchList"
        ("description", "x" * 101, "description"),  # "100 characters or less"
    ],
)
async def test_values_outside_the_documented_rules_are_400(client, marker, field, value, named):
    with raises_odata_error(400, "BadRequest") as info:
        await client.security.ti_indicators.post(indicator(marker, 0, **{field: value}))
    assert named in info.value.error.message, info.value.error.message
    assert await mine(client, marker) == []  # nothing was written


async def test_patch_answers_204_or_the_indicator_when_asked(client, marker):
    # tiindicator-update.md: "If successful, this method returns a 204 No Content response code. If
    # the optional request header is used, the method returns a 200 OK response code and the
    # updated tiIndicator object"; "Required fields are: id, expirationDateTime, targetProduct";
    # only the properties of its table are updatable, others are ignored.
    created = await client.security.ti_indicators.post(indicator(marker, 1))
    item = client.security.ti_indicators.by_ti_indicator_id(created.id)
    later = EXPIRES.replace(year=2028)
    patched = await item.patch(
        TiIndicator(
            expiration_date_time=later,
            target_product="Azure Sentinel",
            confidence=90,
            is_active=False,
            tags=["canary", "reviewed"],
            file_hash_value=f"{99:064x}",  # not updatable: ignored
        )
    )
    assert patched is None  # 204 No Content: the SDK returns None
    got = await item.get()
    assert (got.expiration_date_time, got.confidence, got.is_active, got.tags) == (later, 90, False, ["canary", "reviewed"])
    assert (got.file_hash_value, got.severity, got.external_id) == (f"{1:064x}", 1, f"{marker}-1")

    # The same call with Prefer: return=representation, through the SDK's request configuration.
    config = RequestConfiguration()
    config.headers.add("Prefer", "return=representation")
    patched = await item.patch(
        TiIndicator(expiration_date_time=later, target_product="Azure Sentinel", severity=0), config
    )
    assert isinstance(patched, TiIndicator), patched
    assert patched.additional_data["@odata.context"].endswith("#security/tiIndicators/$entity")
    assert (patched.id, patched.severity, patched.confidence, patched.is_active) == (created.id, 0, 90, False)
    strip = ("backing_store",)
    assert as_data(await item.get(), strip) == as_data(patched, strip)

    # Without targetProduct (or expirationDateTime) the PATCH is refused and changes nothing.
    with raises_odata_error(400, "BadRequest") as info:
        await item.patch(TiIndicator(expiration_date_time=later, severity=4))
    assert "targetProduct" in info.value.error.message
    with raises_odata_error(400, "BadRequest") as info:
        await item.patch(TiIndicator(target_product="Azure Sentinel", severity=4))
    assert "expirationDateTime" in info.value.error.message
    assert (await item.get()).severity == 0


REQUIRED = {
    "action": "action",
    "description": "description",
    "expiration_date_time": "expirationDateTime",
    "target_product": "targetProduct",
    "threat_type": "threatType",
    "tlp_level": "tlpLevel",
}


@pytest.mark.parametrize("missing", list(REQUIRED))
async def test_create_missing_a_required_property_is_400(client, marker, missing):
    # Left unset, the SDK does not serialise the property at all (a fresh model is partial).
    with raises_odata_error(400, "BadRequest") as info:
        await client.security.ti_indicators.post(indicator(marker, 0, **{missing: None}))
    assert REQUIRED[missing] in info.value.error.message
    assert await mine(client, marker) == []  # nothing was written


async def test_create_without_an_observable_is_400(client, marker):
    no_observable = indicator(marker, 0, file_hash_type=None, file_hash_value=None)
    with raises_odata_error(400, "BadRequest"):
        await client.security.ti_indicators.post(no_observable)
    assert await mine(client, marker) == []


async def test_submit_ti_indicators(client, marker):
    batch = SubmitTiIndicatorsPostRequestBody(value=[indicator(marker, i) for i in range(3)])
    with skip_if_not_served("POST /security/tiIndicators/submitTiIndicators"):
        result = await client.security.ti_indicators.submit_ti_indicators.post(batch)
    assert result is not None
    assert [t.external_id for t in result.value] == [f"{marker}-{i}" for i in range(3)]
    assert all(LOWERCASE_GUID.match(t.id or "") for t in result.value), [t.id for t in result.value]
    assert len({t.id for t in result.value}) == 3
    listed = await mine(client, marker)
    assert [(t.id, t.external_id, t.file_hash_value) for t in listed] == [
        (t.id, f"{marker}-{i}", f"{i:064x}") for i, t in enumerate(result.value)
    ]
    assert all(t.tlp_level is TlpLevel.Green and t.target_product == "Azure Sentinel" for t in listed)


async def test_delete_ti_indicators_by_external_id(client, marker):
    indicators = client.security.ti_indicators
    created = [await indicators.post(indicator(marker, i)) for i in range(3)]
    body = DeleteTiIndicatorsByExternalIdPostRequestBody(value=[f"{marker}-0", f"{marker}-2"])
    with skip_if_not_served("POST /security/tiIndicators/deleteTiIndicatorsByExternalId"):
        result = await indicators.delete_ti_indicators_by_external_id.post(body)
    assert result is not None
    # One resultInfo per requested externalId (Graph's response is a resultInfo collection).
    assert len(result.value) == 2
    assert all(r.code is not None for r in result.value), [(r.code, r.message) for r in result.value]
    assert [t.id for t in await mine(client, marker)] == [created[1].id]
    with raises_odata_error(404, "ResourceNotFound"):
        await indicators.by_ti_indicator_id(created[0].id).get()


async def test_partial_failures_answer_per_item(client, marker):
    # Graph: bulk tiIndicator actions answer 206 Partial Content with every item's outcome when some
    # fail. The SDK takes 206 as a success and parses the body. The failed items' shapes are
    # graphsec's (docs/ACTIONS.md; Graph documents none): a resultInfo whose code is the item's HTTP
    # status, and the submitted item back with an `@graphsec.error` annotation.
    indicators = client.security.ti_indicators
    batch = SubmitTiIndicatorsPostRequestBody(
        value=[indicator(marker, 0), indicator(marker, 1, tlp_level=None), indicator(marker, 2)]
    )
    with skip_if_not_served("POST /security/tiIndicators/submitTiIndicators"):
        submitted = await indicators.submit_ti_indicators.post(batch)
    ok0, bad, ok2 = submitted.value
    assert LOWERCASE_GUID.match(ok0.id or "") and LOWERCASE_GUID.match(ok2.id or "")
    assert bad.id is None and bad.external_id == f"{marker}-1"
    error = bad.additional_data.get("@graphsec.error")
    assert error and error["code"] == "BadRequest" and "tlpLevel" in error["message"], error
    assert [t.external_id for t in await mine(client, marker)] == [f"{marker}-0", f"{marker}-2"]

    body = DeleteTiIndicatorsByExternalIdPostRequestBody(value=[f"{marker}-2", f"{marker}-1"])
    with skip_if_not_served("POST /security/tiIndicators/deleteTiIndicatorsByExternalId"):
        deleted = await indicators.delete_ti_indicators_by_external_id.post(body)
    assert [r.code for r in deleted.value] == [200, 404], [(r.code, r.message) for r in deleted.value]
    assert [t.external_id for t in await mine(client, marker)] == [f"{marker}-0"]
