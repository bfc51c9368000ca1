"""Graph v1.0 through the official v1.0 SDK (`msgraph-sdk`, `from msgraph import GraphServiceClient`),
unmodified, against graphsec's `/v1.0` root: the three legacy sets v1.0 still has (alerts,
secureScores, secureScoreControlProfiles) through `client.security.*`, the SDK's v1.0 models and
its own ODataError. The same server also serves `/beta` over the same store, so the last scenarios
create through the beta SDK and read through the v1.0 one (and back).

Seeding is by POST, which graphsec accepts on every set. PATCH: Microsoft's reference pages answer
204 No Content by default (200 only with `Prefer: return=representation`), as graphsec does (issue
21): the SDK returns None and the scenarios check the result with a follow-up GET. secureScores list
newest first (securescore.md), so `$top=1` is the current score. A control-profile PATCH takes
assignedTo/comment/state at the top level and records them as a new controlStateUpdates entry
(securescorecontrolprofile-update.md). Skipped, with the reason, while graphsec does not serve
`/v1.0`.
"""

from __future__ import annotations

import ssl
from datetime import datetime, timezone

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.alert import Alert
from msgraph.generated.models.alert_feedback import AlertFeedback
from msgraph.generated.models.alert_severity import AlertSeverity
from msgraph.generated.models.alert_status import AlertStatus
from msgraph.generated.models.average_comparative_score import AverageComparativeScore
from msgraph.generated.models.control_score import ControlScore
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.secure_score import SecureScore
from msgraph.generated.models.secure_score_control_profile import SecureScoreControlProfile
from msgraph.generated.models.secure_score_control_state_update import SecureScoreControlStateUpdate
from msgraph.generated.models.security_vendor_information import SecurityVendorInformation
from msgraph.generated.models.user_security_state import UserSecurityState
from msgraph.generated.security.alerts.alerts_request_builder import AlertsRequestBuilder
from msgraph.generated.security.alerts.count.count_request_builder import CountRequestBuilder
from msgraph.generated.security.secure_score_control_profiles.secure_score_control_profiles_request_builder import (
    SecureScoreControlProfilesRequestBuilder,
)
from msgraph.generated.security.secure_scores.secure_scores_request_builder import (
    SecureScoresRequestBuilder,
)
from msgraph_beta.generated.models.alert import Alert as BetaAlert
from msgraph_beta.generated.models.alert_severity import AlertSeverity as BetaAlertSeverity
from msgraph_beta.generated.models.alert_status import AlertStatus as BetaAlertStatus
from msgraph_beta.generated.models.security_vendor_information import (
    SecurityVendorInformation as BetaVendorInformation,
)

from graphsec_server import COMPAT_APP_ID
from sdk_helpers import LOWERCASE_GUID, as_data, raises_odata_error, read_all

pytestmark = pytest.mark.usefixtures("needs_v1")

VENDOR = SecurityVendorInformation(provider="Windows Defender ATP", vendor="Microsoft")
SCORE_VENDOR = SecurityVendorInformation(provider="SecureScore", vendor="Microsoft")
STRIP = ("backing_store", "odata_type")  # @odata.type: graphsec annotates nested complex values


def query(parameters_class, **params) -> RequestConfiguration:
    return RequestConfiguration(query_parameters=parameters_class(**params))


def alerts_query(**params) -> RequestConfiguration:
    return query(AlertsRequestBuilder.AlertsRequestBuilderGetQueryParameters, **params)


def literal(when: datetime) -> str:
    """A DateTimeOffset literal for `$filter`. The SDK reads graphsec's 7-digit fractions to the
    microsecond, so `ge literal(t)` holds exactly for the entities created at or after t."""
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def context_of(model) -> str:
    return model.additional_data.get("@odata.context", "")


# --- alerts

SEVERITY = [AlertSeverity.High, AlertSeverity.Low, AlertSeverity.Medium, AlertSeverity.High, AlertSeverity.Informational]
STATUS = [AlertStatus.NewAlert, AlertStatus.InProgress, AlertStatus.NewAlert, AlertStatus.Resolved, AlertStatus.NewAlert]
CONFIDENCE = [70, 95, 10, 55, 80]  # not the creation order, so an order by it is not insertion order


def alert(marker: str, i: int) -> Alert:
    """An alert as a provider reports it, with Graph's three non-null properties; azureTenantId is
    this scenario's filter key on the shared server."""
    return Alert(
        azure_tenant_id=marker,
        title=f"{marker}-{i}",
        category="Malware",
        severity=SEVERITY[i],
        status=STATUS[i],
        confidence=CONFIDENCE[i],
        event_date_time=datetime(2026, 11, 1, 8, 30, i, tzinfo=timezone.utc),
        vendor_information=VENDOR,
        user_states=[UserSecurityState(user_principal_name=f"user{i}-{marker}@contoso.example", account_name=f"user{i}")],
    )


@pytest.fixture
async def five(v1_client, marker) -> list[Alert]:
    """Alerts {marker}-0..4, created one after the other (so their createdDateTime ascend)."""
    return [await v1_client.security.alerts.post(alert(marker, i)) for i in range(5)]


def titles(page) -> list[str]:
    return [a.title for a in page.value]


async def test_create_and_get_alert(v1_client, marker):
    created = await v1_client.security.alerts.post(alert(marker, 0))
    assert created is not None
    assert LOWERCASE_GUID.match(created.id or ""), created.id
    assert created.odata_type == "#microsoft.graph.alert"
    assert context_of(created).endswith("/v1.0/$metadata#security/alerts/$entity"), context_of(created)
    got = await v1_client.security.alerts.by_alert_id(created.id).get()
    assert context_of(got).endswith("/v1.0/$metadata#security/alerts/$entity"), context_of(got)
    for read in (created, got):
        assert (read.id, read.title, read.severity, read.status, read.confidence, read.category) == (
            created.id, f"{marker}-0", AlertSeverity.High, AlertStatus.NewAlert, 70, "Malware"
        )  # fmt: skip
        assert read.event_date_time == datetime(2026, 11, 1, 8, 30, 0, tzinfo=timezone.utc)
        assert read.created_date_time is not None and read.last_modified_date_time is not None
        assert [u.user_principal_name for u in read.user_states] == [f"user0-{marker}@contoso.example"]
        assert (read.vendor_information.provider, read.vendor_information.vendor) == ("Windows Defender ATP", "Microsoft")


async def test_filter_on_created_date_time_severity_and_status(v1_client, marker, five):
    mine = f"azureTenantId eq '{marker}'"
    created = [a.created_date_time for a in five]
    assert created == sorted(created), "created one after the other"
    cut = created[2]
    page = await v1_client.security.alerts.get(alerts_query(filter=f"{mine} and createdDateTime ge {literal(cut)}"))
    assert sorted(titles(page)) == sorted(a.title for a in five if a.created_date_time >= cut)
    assert {f"{marker}-{i}" for i in (2, 3, 4)} <= set(titles(page))
    page = await v1_client.security.alerts.get(alerts_query(filter=f"{mine} and createdDateTime lt {literal(cut)}"))
    assert sorted(titles(page)) == sorted(a.title for a in five if a.created_date_time < cut)

    page = await v1_client.security.alerts.get(alerts_query(filter=f"{mine} and severity eq 'high'", orderby=["title"]))
    assert titles(page) == [f"{marker}-0", f"{marker}-3"]
    page = await v1_client.security.alerts.get(
        alerts_query(filter=f"{mine} and status eq 'newAlert' and severity ne 'high'", orderby=["title"])
    )
    assert titles(page) == [f"{marker}-2", f"{marker}-4"]
    # All three at once, as a SIEM connector polls: new high-severity alerts since a point in time.
    page = await v1_client.security.alerts.get(
        alerts_query(
            filter=f"{mine} and createdDateTime ge {literal(created[0])} and severity eq 'high' and status eq 'resolved'"
        )
    )
    assert titles(page) == [f"{marker}-3"]


async def test_orderby_top_count_and_paging(v1_client, marker, five):
    page = await v1_client.security.alerts.get(
        alerts_query(filter=f"azureTenantId eq '{marker}'", orderby=["confidence desc"], top=2, count=True)
    )
    by_confidence = [f"{marker}-{i}" for i in sorted(range(5), key=lambda i: -CONFIDENCE[i])]
    assert titles(page) == by_confidence[:2]
    assert page.odata_count == 5, "the whole filtered set, not the page"
    assert page.odata_next_link and "/v1.0/security/alerts?" in page.odata_next_link, page.odata_next_link
    # The rest of the order, across pages, through the SDK's own PageIterator (links stay in v1.0).
    everything = await read_all(v1_client, page)
    assert [a.title for a in everything] == by_confidence

    page = await v1_client.security.alerts.get(
        alerts_query(filter=f"azureTenantId eq '{marker}'", orderby=["createdDateTime desc", "title desc"], top=10)
    )
    assert titles(page) == [f"{marker}-{i}" for i in (4, 3, 2, 1, 0)]
    assert page.odata_next_link is None


async def test_select(v1_client, marker, five):
    page = await v1_client.security.alerts.get(
        alerts_query(filter=f"azureTenantId eq '{marker}'", select=["title", "severity"], orderby=["title"])
    )
    assert context_of(page).endswith("/v1.0/$metadata#security/alerts(title,severity)"), context_of(page)
    assert [(a.title, a.severity) for a in page.value] == [(f"{marker}-{i}", SEVERITY[i]) for i in range(5)]
    for a in page.value:
        assert a.id  # the key comes along
        assert a.status is None and a.confidence is None and a.vendor_information is None  # not selected


async def test_the_count_builder(v1_client, marker, five):
    count = await v1_client.security.alerts.count.get(
        query(
            CountRequestBuilder.CountRequestBuilderGetQueryParameters,
            filter=f"azureTenantId eq '{marker}' and status eq 'newAlert'",
        )
    )
    assert count == 3


async def test_patch_status_feedback_assigned_to(v1_client, marker, five):
    item = v1_client.security.alerts.by_alert_id(five[1].id)
    patched = await item.patch(
        Alert(
            status=AlertStatus.Resolved,
            feedback=AlertFeedback.TruePositive,
            assigned_to="secops@contoso.example",
            comments=["Closed in Sentinel"],
            vendor_information=VENDOR,  # Graph requires provider and vendor in every alert PATCH
        )
    )
    # alert-update.md (v1.0): "If successful, this method returns a 204 No Content response code":
    # the SDK returns None.
    assert patched is None
    read = await item.get()
    assert (read.status, read.feedback, read.assigned_to, read.comments) == (
        AlertStatus.Resolved, AlertFeedback.TruePositive, "secops@contoso.example", ["Closed in Sentinel"]
    )  # fmt: skip
    # Everything the PATCH did not name is as created.
    assert (read.title, read.severity, read.confidence) == (f"{marker}-1", AlertSeverity.Low, 95)
    assert as_data(read.user_states, STRIP) == as_data(five[1].user_states, STRIP)
    for other in (five[0], five[2]):
        read = await v1_client.security.alerts.by_alert_id(other.id).get()
        assert (read.status, read.feedback, read.assigned_to) == (other.status, None, None)
    page = await v1_client.security.alerts.get(
        alerts_query(filter=f"azureTenantId eq '{marker}' and status eq 'resolved' and feedback eq 'truePositive'")
    )
    assert [a.id for a in page.value] == [five[1].id]

    # Prefer: return=minimal is the default made explicit: None, and the change is there.
    minimal = RequestConfiguration(headers={"Prefer": "return=minimal"})
    assert await item.patch(Alert(comments=["Reopened"], vendor_information=VENDOR), minimal) is None
    got = await item.get()
    assert (got.comments, got.status) == (["Reopened"], AlertStatus.Resolved)
    # "If the optional request header is used, the method returns a 200 OK response code and an
    # updated alert object in the response body" (alert-update.md): the SDK returns the alert.
    representation = RequestConfiguration()
    representation.headers.add("Prefer", "return=representation")
    patched = await item.patch(Alert(comments=["Reopened", "Escalated"], vendor_information=VENDOR), representation)
    assert isinstance(patched, Alert), patched
    assert context_of(patched).endswith("/v1.0/$metadata#security/alerts/$entity"), context_of(patched)
    assert (patched.id, patched.comments, patched.status, patched.title) == (
        five[1].id, ["Reopened", "Escalated"], AlertStatus.Resolved, f"{marker}-1"
    )  # fmt: skip
    assert as_data(await item.get(), ("backing_store",)) == as_data(patched, ("backing_store",))


async def test_get_modify_patch_back_whole(v1_client, marker, five):
    # The SDK idiom: the body carries everything read, @odata.context, the nested @odata.type and
    # the server-managed id and timestamps included.
    item = v1_client.security.alerts.by_alert_id(five[2].id)
    got = await item.get()
    got.status = AlertStatus.InProgress
    got.assigned_to = "tier2"
    got.tags = ["triaged"]
    assert await item.patch(got) is None  # 204 No Content (alert-update.md)
    again = await item.get()
    assert (again.status, again.assigned_to, again.tags) == (AlertStatus.InProgress, "tier2", ["triaged"])
    for name in ("title", "severity", "confidence", "user_states", "vendor_information", "event_date_time", "created_date_time"):
        assert as_data(getattr(again, name)) == as_data(getattr(got, name)), name


async def test_errors_are_odata_errors(v1_client):
    with raises_odata_error(404, "ResourceNotFound", ODataError) as info:
        await v1_client.security.alerts.by_alert_id("no-such-alert").get()
    assert "no-such-alert" in info.value.error.message
    with raises_odata_error(404, "ResourceNotFound", ODataError):
        await v1_client.security.secure_score_control_profiles.by_secure_score_control_profile_id("nope").get()
    with raises_odata_error(400, "BadRequest", ODataError) as info:
        await v1_client.security.alerts.get(alerts_query(top=1001))  # Graph's limit on alerts
    assert "top" in info.value.error.message.lower()


# --- secureScores


def score(marker: str, current: float) -> SecureScore:
    return SecureScore(
        azure_tenant_id=marker,
        active_user_count=120,
        licensed_user_count=240,
        current_score=current,
        max_score=219.0,
        enabled_services=["HasExchange", "HasSharePoint"],
        average_comparative_scores=[AverageComparativeScore(basis="AllTenants", average_score=31.87)],
        control_scores=[
            ControlScore(
                control_category="Identity",
                control_name="AdminMFAV2",
                score=10.0,
                additional_data={"implementationStatus": "2 of 4 admins"},  # open complex type
            )
        ],
        vendor_information=SCORE_VENDOR,
    )


async def test_secure_scores_top_1(v1_client, marker):
    scores = v1_client.security.secure_scores
    mine = [await scores.post(score(marker, current)) for current in (27.5, 31.0)]
    params = SecureScoresRequestBuilder.SecureScoresRequestBuilderGetQueryParameters
    # What Graph's "List secureScores" example sends. securescore.md (v1.0): "This data is sorted by
    # createdDateTime, from latest to earliest. This allows you to page responses by using
    # $top=n": the newest snapshot on the server, the last one created here (scenarios run one
    # after the other).
    assert mine[0].created_date_time < mine[1].created_date_time
    page = await scores.get(query(params, top=1))
    assert [s.id for s in page.value] == [mine[1].id] and isinstance(page.value[0], SecureScore)
    assert context_of(page).endswith("/v1.0/$metadata#security/secureScores"), context_of(page)
    assert page.odata_next_link and "/v1.0/security/secureScores?" in page.odata_next_link
    page = await scores.get(query(params, top=1, filter=f"azureTenantId eq '{marker}'"))
    assert [s.id for s in page.value] == [mine[1].id]
    # The next page, through the SDK's PageIterator, is the older one: newest first across pages.
    assert [s.id for s in await read_all(v1_client, page)] == [mine[1].id, mine[0].id]
    got = await scores.by_secure_score_id(mine[0].id).get()
    assert (got.azure_tenant_id, got.current_score, got.max_score, got.enabled_services) == (
        marker, 27.5, 219.0, ["HasExchange", "HasSharePoint"]
    )  # fmt: skip
    [control] = got.control_scores
    assert (control.control_name, control.score) == ("AdminMFAV2", 10.0)
    assert control.additional_data.get("implementationStatus") == "2 of 4 admins"


# --- secureScoreControlProfiles


def control_profile(marker: str, title: str, category: str, rank: int) -> SecureScoreControlProfile:
    return SecureScoreControlProfile(
        azure_tenant_id=marker,
        title=title,
        control_category=category,
        action_type="Config",
        max_score=10.0,
        rank=rank,
        service="AzureAD",
        tier="Core",
        threats=["Password Cracking", "Account Breach"],
        control_state_updates=[
            SecureScoreControlStateUpdate(
                assigned_to="",
                comment="imported",
                state="Default",
                updated_by="admin@contoso.example",
                updated_date_time=datetime(2026, 10, 1, tzinfo=timezone.utc),
            )
        ],
        vendor_information=SCORE_VENDOR,
    )


@pytest.fixture
async def three_profiles(v1_client, marker) -> list[SecureScoreControlProfile]:
    profiles = v1_client.security.secure_score_control_profiles
    wanted = [("AdminMFAV2", "Identity", 3), ("DLPEnabled", "Data", 1), ("SigninRiskPolicy", "Identity", 2)]
    return [await profiles.post(control_profile(marker, *w)) for w in wanted]


async def test_control_profiles_list_and_get(v1_client, marker, three_profiles):
    profiles = v1_client.security.secure_score_control_profiles
    params = SecureScoreControlProfilesRequestBuilder.SecureScoreControlProfilesRequestBuilderGetQueryParameters
    page = await profiles.get(
        query(params, filter=f"azureTenantId eq '{marker}' and controlCategory eq 'Identity'", orderby=["rank"], count=True)
    )
    assert [p.title for p in page.value] == ["SigninRiskPolicy", "AdminMFAV2"]
    assert page.odata_count == 2
    assert context_of(page).endswith("/v1.0/$metadata#security/secureScoreControlProfiles"), context_of(page)
    got = await profiles.by_secure_score_control_profile_id(three_profiles[1].id).get()
    assert got.odata_type == "#microsoft.graph.secureScoreControlProfile"
    assert (got.id, got.title, got.control_category, got.rank, got.max_score, got.threats) == (
        three_profiles[1].id, "DLPEnabled", "Data", 1, 10.0, ["Password Cracking", "Account Breach"]
    )  # fmt: skip
    [update] = got.control_state_updates
    assert (update.state, update.updated_by) == ("Default", "admin@contoso.example")
    assert update.updated_date_time == datetime(2026, 10, 1, tzinfo=timezone.utc)


async def test_control_profile_patch(v1_client, marker, three_profiles):
    # securescorecontrolprofile-update.md (v1.0): the updatable fields are assignedTo, comment,
    # state and vendorInformation; "The body must contain the vendorInformation property with valid
    # provider and vendor fields"; "204 No Content". Its 200 example answers assignedTo/comment/state
    # as a controlStateUpdates entry with updatedBy and updatedDateTime: graphsec appends one.
    item = v1_client.security.secure_score_control_profiles.by_secure_score_control_profile_id(three_profiles[0].id)
    before = await item.get()
    # The body of Graph's own "Update secureScoreControlProfile" example: assignedTo, comment and
    # state are not declared on the type, so the SDK sends them as additional data.
    patched = await item.patch(
        SecureScoreControlProfile(
            vendor_information=SCORE_VENDOR,
            additional_data={"assignedTo": "", "comment": "control is reviewed", "state": "Reviewed"},
        )
    )
    assert patched is None  # 204: the SDK returns None
    got = await item.get()
    assert [(u.state, u.comment, u.assigned_to) for u in got.control_state_updates] == [
        ("Default", "imported", ""),
        ("Reviewed", "control is reviewed", ""),
    ]
    entry = got.control_state_updates[1]
    assert entry.updated_by == COMPAT_APP_ID  # the caller: the suite's application token's app id
    assert before.last_modified_date_time < entry.updated_date_time <= got.last_modified_date_time
    assert not {"assignedTo", "comment", "state"} & set(got.additional_data), got.additional_data
    assert (got.title, got.rank, got.tier) == ("AdminMFAV2", 3, "Core")

    # controlStateUpdates itself is not in the page's table of updatable fields: a body that
    # replaces the collection is ignored (only the service appends to the history).
    forged = SecureScoreControlStateUpdate(state="Ignored", comment="forged", updated_by="someone")
    assert await item.patch(
        SecureScoreControlProfile(control_state_updates=[forged], vendor_information=SCORE_VENDOR)
    ) is None
    assert as_data((await item.get()).control_state_updates) == as_data(got.control_state_updates)

    # GET, modify, PATCH the whole object back (the SDK idiom): accepted, and the properties the
    # page does not list as updatable keep their values.
    got.tier = "Defense in depth"
    got.user_impact = "Low"
    assert await item.patch(got) is None
    again = await item.get()
    assert (again.tier, again.user_impact, again.rank, again.title) == ("Core", None, 3, "AdminMFAV2")
    assert as_data(again.control_state_updates) == as_data(got.control_state_updates)
    # The other profiles are untouched.
    other = await v1_client.security.secure_score_control_profiles.by_secure_score_control_profile_id(
        three_profiles[2].id
    ).get()
    assert (other.tier, len(other.control_state_updates)) == ("Core", 1)


# --- one store, two versions


async def test_rows_cross_versions(client, v1_client, server, marker):
    # Created through /beta by the beta SDK, read and updated through /v1.0 by the v1.0 SDK.
    created = await client.security.alerts.post(
        BetaAlert(
            azure_tenant_id=marker,
            title=f"{marker}-beta",
            severity=BetaAlertSeverity.Medium,
            status=BetaAlertStatus.NewAlert,
            vendor_information=BetaVendorInformation(provider="Windows Defender ATP", vendor="Microsoft"),
        )
    )
    assert context_of(created).endswith("/beta/$metadata#security/alerts/$entity"), context_of(created)
    item = v1_client.security.alerts.by_alert_id(created.id)
    got = await item.get()
    assert isinstance(got, Alert)
    assert (got.title, got.severity, got.status) == (f"{marker}-beta", AlertSeverity.Medium, AlertStatus.NewAlert)
    assert context_of(got).endswith("/v1.0/$metadata#security/alerts/$entity"), context_of(got)
    page = await v1_client.security.alerts.get(alerts_query(filter=f"azureTenantId eq '{marker}'", count=True))
    assert (page.odata_count, titles(page)) == (1, [f"{marker}-beta"])
    await item.patch(Alert(status=AlertStatus.Resolved, vendor_information=VENDOR))
    back = await client.security.alerts.by_alert_id(created.id).get()
    assert (back.status, back.title) == (BetaAlertStatus.Resolved, f"{marker}-beta")

    # And the other way: a control profile created through /v1.0, read by the beta SDK.
    profile = await v1_client.security.secure_score_control_profiles.post(control_profile(marker, "MFARegistrationV2", "Identity", 7))
    beta_read = await client.security.secure_score_control_profiles.by_secure_score_control_profile_id(profile.id).get()
    assert (beta_read.title, beta_read.rank, beta_read.control_category) == ("MFARegistrationV2", 7, "Identity")
    assert context_of(beta_read).endswith("/beta/$metadata#security/secureScoreControlProfiles/$entity")

    # A beta-only set is not there under /v1.0 (the v1.0 SDK has no builder for it: raw httpx).
    verify = ssl.create_default_context(cafile=str(server.cert_path)) if server.tls else True
    token = server.default_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(verify=verify, headers=headers) as raw:
        resp = await raw.get(f"{server.v1_root}/security/tiIndicators")
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["message"] == "Resource not found for the segment 'tiIndicators'."
        assert (await raw.get(f"{server.version_root}/security/tiIndicators", params={"$top": "1"})).status_code == 200
