"""Example tests against graphsec with the fixtures of graphsec_fixture.py (run by examples/run)."""

ALERTS = "/v1.0/security/alerts"
READ_WRITE = "SecurityEvents.ReadWrite.All"
READ_ONLY = "SecurityEvents.Read.All"


def new_alert(tenant: str, title: str) -> dict:
    # azureTenantId, severity and status are required; vendorInformation names the provider.
    return {"title": title, "azureTenantId": tenant, "severity": "high", "status": "newAlert",
            "vendorInformation": {"provider": "Example SIEM", "vendor": "Contoso"}}


def test_create_an_alert_and_list_it(graphsec):
    token = graphsec.token("contoso", roles=[READ_WRITE])  # an application (roles) token
    created = graphsec.request("POST", ALERTS, token, json=new_alert("contoso", "Suspicious sign-in"))
    assert created.status == 201, created.body
    assert created.body["id"] in created.headers["location"]

    listed = graphsec.request("GET", ALERTS, token, params={"$filter": "severity eq 'high'"})
    assert listed.status == 200
    # Exactly one: the fixture emptied the server before this test.
    assert [a["title"] for a in listed.value] == ["Suspicious sign-in"]


def test_tenants_are_isolated(graphsec):
    contoso = graphsec.token("contoso", roles=[READ_WRITE])
    fabrikam = graphsec.token("fabrikam", roles=[READ_WRITE])
    alert = graphsec.request("POST", ALERTS, contoso, json=new_alert("contoso", "contoso only")).body

    assert graphsec.request("GET", ALERTS, fabrikam).value == []
    missing = graphsec.request("GET", f"{ALERTS}/{alert['id']}", fabrikam)
    assert missing.status == 404
    assert graphsec.request("GET", f"{ALERTS}/{alert['id']}", contoso).status == 200


def test_a_read_only_token_cannot_write(graphsec):
    reader = graphsec.token("contoso", scopes=[READ_ONLY])  # a delegated (scp) token
    refused = graphsec.request("POST", ALERTS, reader, json=new_alert("contoso", "nope"))
    assert refused.status == 403
    assert refused.body["error"]["code"] == "Authorization_RequestDenied"
    assert graphsec.request("GET", ALERTS, reader).status == 200


def test_every_test_starts_empty(graphsec):
    token = graphsec.token("contoso", roles=[READ_WRITE])
    assert graphsec.request("GET", f"{ALERTS}/$count", token).body == 0
