"""Server-driven paging followed by the SDK: PageIterator and with_url(@odata.nextLink)."""

from __future__ import annotations

import pytest
from msgraph_beta.generated.models.cloud_app_security_profile import CloudAppSecurityProfile

from graph_client import make_client
from graphsec_server import GraphsecServer
from sdk_helpers import read_all

PAGE_SIZE = 3
PROFILES = 10  # four pages: 3 + 3 + 3 + 1


@pytest.fixture(scope="module")
def paged_server():
    with GraphsecServer("--page-size", str(PAGE_SIZE)) as s:
        yield s


@pytest.fixture
async def seeded(paged_server):
    """The paged server with exactly PROFILES profiles (created once, through the SDK)."""
    client = make_client(paged_server, paged_server.default_token())
    profiles = client.security.cloud_app_security_profiles
    if await profiles.count.get() == 0:
        for i in range(PROFILES):
            await profiles.post(CloudAppSecurityProfile(name=f"paged-{i:02}"))
    return client


async def test_page_iterator_reads_every_page(seeded, paged_server):
    client = seeded
    first = await client.security.cloud_app_security_profiles.get()

    assert len(first.value) == PAGE_SIZE
    # Graph's nextLink is absolute; PageIterator requests it verbatim.
    assert first.odata_next_link and first.odata_next_link.startswith(paged_server.version_root)

    items = await read_all(client, first)
    names = [p.name for p in items]
    assert len(names) == PROFILES, names  # nothing skipped, nothing repeated
    assert sorted(names) == [f"paged-{i:02}" for i in range(PROFILES)]
    assert all(isinstance(p, CloudAppSecurityProfile) for p in items)


async def test_with_url_follows_next_link_page_by_page(seeded):
    profiles = seeded.security.cloud_app_security_profiles
    page = await profiles.get()
    sizes = [len(page.value)]
    while page.odata_next_link:
        page = await profiles.with_url(page.odata_next_link).get()
        sizes.append(len(page.value))
    assert sizes == [3, 3, 3, 1]
