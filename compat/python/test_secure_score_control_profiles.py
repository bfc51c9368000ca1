"""secureScoreControlProfiles (microsoft.graph.secureScoreControlProfile) through the beta SDK's
`client.security.secure_score_control_profiles` builders, as a Secure Score workflow updates a
control's state: the documented PATCH body (assignedTo, comment, state with vendorInformation)
recorded as a new `controlStateUpdates` entry, 204 by default and the profile under `Prefer:
return=representation`, Graph's value list for `state`, and the properties a PATCH may not change.
Skipped, with the reason, while graphsec does not serve `/security/secureScoreControlProfiles`.

Graph's update page (securescorecontrolprofile-update.md; the v1.0 page's text and the metadata win
over the beta page's body, src/model/overlay.json): the updatable fields are assignedTo, comment,
state ("Possible values are: Default, Ignored, ThirdParty, Reviewed") and vendorInformation; "The
body must contain the vendorInformation property with valid provider and vendor fields"; "If
successful, this method returns a 204 No Content response code". Its 200 example answers the three
as a controlStateUpdates entry with updatedBy and updatedDateTime. The beta SDK's model declares
none of the three at the top level, so they go out as the model's `additional_data`: through the
SDK, no raw requests.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.secure_score_control_profile import SecureScoreControlProfile
from msgraph_beta.generated.models.secure_score_control_state_update import (
    SecureScoreControlStateUpdate,
)
from msgraph_beta.generated.models.security_vendor_information import SecurityVendorInformation

from graphsec_server import COMPAT_APP_ID
from sdk_helpers import as_data, raises_odata_error

pytestmark = pytest.mark.usefixtures("needs_control_profiles")

VENDOR = SecurityVendorInformation(provider="SecureScore", vendor="Microsoft")
IMPORTED = datetime(2026, 10, 1, tzinfo=timezone.utc)
STATE_MEMBERS = ("assignedTo", "comment", "state")


def control_profile(marker: str, title: str, rank: int) -> SecureScoreControlProfile:
    """A control as Secure Score lists it, with one earlier state update."""
    return SecureScoreControlProfile(
        azure_tenant_id=marker,
        title=title,
        control_category="Identity",
        action_type="Config",
        max_score=10.0,
        rank=rank,
        service="AzureAD",
        tier="Core",
        threats=["Password Cracking"],
        control_state_updates=[
            SecureScoreControlStateUpdate(
                assigned_to="",
                comment="imported",
                state="Default",
                updated_by="admin@contoso.example",
                updated_date_time=IMPORTED,
            )
        ],
        vendor_information=VENDOR,
    )


def history(profile: SecureScoreControlProfile) -> list[tuple]:
    return [(u.state, u.comment, u.assigned_to) for u in profile.control_state_updates]


@pytest.fixture
async def two(client, marker) -> list[SecureScoreControlProfile]:
    profiles = client.security.secure_score_control_profiles
    return [await profiles.post(control_profile(marker, t, r)) for t, r in (("AdminMFAV2", 3), ("DLPEnabled", 1))]


async def test_state_patch_appends_a_control_state_update(client, marker, two):
    item = client.security.secure_score_control_profiles.by_secure_score_control_profile_id(two[0].id)
    before = await item.get()
    state = {"assignedTo": "secops@contoso.example", "comment": "control is reviewed", "state": "Reviewed"}
    patched = await item.patch(SecureScoreControlProfile(vendor_information=VENDOR, additional_data=state))
    assert patched is None  # 204 No Content: the SDK returns None
    got = await item.get()
    assert history(got) == [
        ("Default", "imported", ""),
        ("Reviewed", "control is reviewed", "secops@contoso.example"),
    ]
    first, entry = got.control_state_updates
    assert as_data(first) == as_data(before.control_state_updates[0])  # the history is kept
    # Who and when are the service's: the caller (the suite's application token: its app id) and
    # the write's time.
    assert entry.updated_by == COMPAT_APP_ID
    assert before.last_modified_date_time < entry.updated_date_time <= got.last_modified_date_time
    # Recorded in the history, not kept as stray dynamic properties of the profile.
    assert not set(STATE_MEMBERS) & set(got.additional_data), got.additional_data
    assert (got.title, got.rank, got.tier) == ("AdminMFAV2", 3, "Core")

    # The same call with Prefer: return=representation, through the SDK's request configuration:
    # the updated profile. A state is matched ignoring case and stored as the page lists it.
    config = RequestConfiguration()
    config.headers.add("Prefer", "return=representation")
    patched = await item.patch(
        SecureScoreControlProfile(
            vendor_information=VENDOR, additional_data={"comment": "handled by a third party", "state": "thirdparty"}
        ),
        config,
    )
    assert isinstance(patched, SecureScoreControlProfile), patched
    assert patched.additional_data["@odata.context"].endswith("#security/secureScoreControlProfiles/$entity")
    assert history(patched)[1:] == [
        ("Reviewed", "control is reviewed", "secops@contoso.example"),
        ("ThirdParty", "handled by a third party", None),
    ]
    assert as_data(await item.get(), ("backing_store",)) == as_data(patched, ("backing_store",))

    # The other profile is untouched.
    other = await client.security.secure_score_control_profiles.by_secure_score_control_profile_id(two[1].id).get()
    assert history(other) == [("Default", "imported", "")]


async def test_state_patch_refusals(client, marker, two):
    item = client.security.secure_score_control_profiles.by_secure_score_control_profile_id(two[0].id)
    # "Possible values are: Default, Ignored, ThirdParty, Reviewed."
    with raises_odata_error(400, "BadRequest") as info:
        await item.patch(SecureScoreControlProfile(vendor_information=VENDOR, additional_data={"state": "Fixed"}))
    assert "Default, Ignored, ThirdParty, Reviewed" in info.value.error.message
    # "The body must contain the vendorInformation property with valid provider and vendor fields."
    with raises_odata_error(400, "BadRequest") as info:
        await item.patch(SecureScoreControlProfile(additional_data={"state": "Reviewed"}))
    assert "vendorInformation" in info.value.error.message
    with raises_odata_error(400, "BadRequest") as info:
        await item.patch(
            SecureScoreControlProfile(
                vendor_information=SecurityVendorInformation(provider="SecureScore"),
                additional_data={"state": "Reviewed"},
            )
        )
    assert "vendor" in info.value.error.message
    assert history(await item.get()) == [("Default", "imported", "")]  # nothing was written


async def test_other_properties_are_not_updatable(client, marker, two):
    # The update page's table lists only assignedTo, comment, state and vendorInformation: anything
    # else in the body is ignored, including controlStateUpdates itself and what the SDK idiom
    # GET -> modify -> PATCH back sends (the read profile whole, @odata.context and timestamps too).
    item = client.security.secure_score_control_profiles.by_secure_score_control_profile_id(two[0].id)
    got = await item.get()
    got.tier = "Defense in depth"
    got.rank = 99
    got.control_state_updates = got.control_state_updates + [
        SecureScoreControlStateUpdate(state="Ignored", comment="written by the client", updated_by="someone")
    ]
    assert await item.patch(got) is None
    again = await item.get()
    assert (again.tier, again.rank, history(again)) == ("Core", 3, [("Default", "imported", "")])
    assert (again.title, again.max_score, again.threats) == ("AdminMFAV2", 10.0, ["Password Cracking"])
