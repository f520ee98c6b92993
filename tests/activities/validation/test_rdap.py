"""Domain expiry over RDAP: the client against the loopback simulator (real HTTP, RFC 9083 documents), and the
``validate_order`` activity on top of it (R-DOM-3)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.validation import RdapClient, RdapError, RdapUnavailable, ValidationActivities
from activities.validation.rdap import event_date, registrant_name
from models.activity_io import PlacedOrder
from models.order import Province
from simulators.rdap import RdapSimulator
from tests.factories import make_order

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[RdapSimulator]:
    simulator = RdapSimulator({"example.com": NOW + timedelta(days=400)}, clock=lambda: NOW)
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()


@pytest.fixture
async def rdap(sim: RdapSimulator) -> AsyncIterator[RdapClient]:
    async with RdapClient(sim.url, timeout=5) as client:
        yield client


async def test_expiry_is_read_from_the_rdap_document_over_loopback(sim: RdapSimulator, rdap: RdapClient) -> None:
    sim.add("example.cn", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), registrant="示例科技有限公司")
    assert await rdap.expiry("example.cn") == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    found = await rdap.lookup("EXAMPLE.cn")
    assert found.registered and found.registrant == "示例科技有限公司"
    assert found.registered_at is not None and found.registered_at < found.expires_at  # type: ignore[operator]


async def test_simulator_answers_rfc_9083_domain_objects(sim: RdapSimulator) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{sim.url}/domain/example.com")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/rdap+json")
    body = response.json()
    assert body["objectClassName"] == "domain" and body["ldhName"] == "example.com"
    assert "rdap_level_0" in body["rdapConformance"]
    assert [e["eventAction"] for e in body["events"]][:3] == ["registration", "expiration", "last changed"]
    assert body["events"][1]["eventDate"] == "2026-07-07T09:00:00Z"
    [registrant] = [e for e in body["entities"] if "registrant" in e["roles"]]
    assert registrant["vcardArray"][0] == "vcard"
    assert ["fn", {}, "text", "示例科技有限公司"] in registrant["vcardArray"][1]
    assert body["links"][0]["rel"] == "self"


async def test_unknown_domain_answers_registered_for_a_year_unless_strict(sim: RdapSimulator, rdap: RdapClient) -> None:
    assert await rdap.expiry("unknown-demo.cn") == NOW + timedelta(days=365)
    sim.strict = True
    assert await rdap.expiry("another-unknown.cn") is None
    assert await rdap.expiry("unknown-demo.cn") == NOW + timedelta(days=365)  # remembered


async def test_404_means_not_registered_with_an_rdap_error_object(sim: RdapSimulator, rdap: RdapClient) -> None:
    sim.strict = True
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{sim.url}/domain/nowhere.com")
    assert response.status_code == 404
    assert response.json()["errorCode"] == 404
    found = await rdap.lookup("nowhere.com")
    assert not found.registered and found.expires_at is None


async def test_domains_are_added_and_removed_at_run_time_over_http(sim: RdapSimulator, rdap: RdapClient) -> None:
    async with httpx.AsyncClient() as http:
        added = await http.post(
            f"{sim.url}/sim/domains",
            json={"domains": [{"name": "例子.中国", "expires_at": "2027-01-01T00:00:00+00:00"}]},
        )
        assert added.json() == {"added": ["xn--fsqu00a.xn--fiqs8s"]}
        assert await rdap.expiry("例子.中国") == datetime(2027, 1, 1, tzinfo=UTC)
        body = (await http.get(f"{sim.url}/domain/xn--fsqu00a.xn--fiqs8s")).json()
        assert body["unicodeName"] == "例子.中国"
        await http.delete(f"{sim.url}/sim/domains/example.com")
        assert await rdap.expiry("example.com") is None
        refused = await http.post(f"{sim.url}/sim/domains", json={"name": "bad_name.com"})
        assert refused.status_code == 400


async def test_server_errors_and_unreachable_servers_raise_so_temporal_retries(
    sim: RdapSimulator, rdap: RdapClient
) -> None:
    sim.fail_next(1, 503)
    with pytest.raises(RdapUnavailable, match="503"):
        await rdap.expiry("example.com")
    assert await rdap.expiry("example.com") is not None  # the outage is over
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    async with RdapClient(f"http://127.0.0.1:{closed_port}", timeout=2) as nowhere:
        with pytest.raises(RdapUnavailable):
            await nowhere.expiry("example.com")


def _answering(status: int, body: object) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"content-type": "application/rdap+json"})

    return httpx.MockTransport(handler)


async def test_a_refused_query_or_a_missing_expiry_is_an_error_not_a_retry() -> None:
    async with RdapClient("http://rdap.test", transport=_answering(400, {"errorCode": 400, "title": "Bad"})) as c:
        with pytest.raises(RdapError, match="400: Bad") as raised:
            await c.expiry("example.com")
        assert not isinstance(raised.value, RdapUnavailable)
    no_expiry = {"objectClassName": "domain", "ldhName": "example.de", "events": []}
    async with RdapClient("http://rdap.test", transport=_answering(200, no_expiry)) as c:
        assert (await c.lookup("example.de")).expires_at is None
        with pytest.raises(RdapError, match="no expiration"):
            await c.expiry("example.de")
    async with RdapClient("http://rdap.test", transport=_answering(429, {})) as c:
        with pytest.raises(RdapUnavailable):
            await c.expiry("example.com")


def test_event_dates_and_registrant_are_read_from_a_registry_style_document() -> None:
    document = json.loads(
        """{
          "objectClassName": "domain",
          "ldhName": "EXAMPLE.ORG",
          "events": [
            {"eventAction": "last changed", "eventDate": "2024-11-20T10:00:00.123Z"},
            {"eventAction": "expiration", "eventDate": "2026-08-13T04:00:00Z"},
            {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00+00:00"}
          ],
          "entities": [
            {"objectClassName": "entity", "roles": ["registrar"],
             "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "A Registrar"]]]},
            {"objectClassName": "entity", "roles": ["registrant", "administrative"],
             "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Holder"]]]}
          ]
        }"""
    )
    assert event_date(document, "expiration") == datetime(2026, 8, 13, 4, tzinfo=UTC)
    assert event_date(document, "registration") == datetime(1995, 8, 14, 4, tzinfo=UTC)
    assert event_date(document, "transfer") is None
    assert registrant_name(document) == "Example Holder"


# ------------------------------------------------------------------------------------- the activity (R-DOM-3)


async def _validate(sim: RdapSimulator, province: Province, expires_in: timedelta) -> list[str]:
    order = make_order(province=province)
    for domain in ("example.com", "example.cn"):
        sim.add(domain, NOW + expires_in)
    async with RdapClient(sim.url) as client:
        activities = ValidationActivities(client)
        result = await ActivityEnvironment().run(activities.validate_order, PlacedOrder(order=order, as_of=NOW))
    return [v.rule_id for v in result.violations]


@pytest.mark.parametrize(
    ("province", "days", "refused"),
    [
        (Province.SHANDONG, 44, True),
        (Province.SHANDONG, 46, False),
        (Province.BEIJING, 89, True),
        (Province.BEIJING, 91, False),
        (Province.SICHUAN, 89, True),
        (Province.SICHUAN, 91, False),
    ],
)
async def test_r_dom_3_activity_checks_expiry_over_rdap_45_days_in_shandong_3_months_elsewhere(
    sim: RdapSimulator, province: Province, days: int, refused: bool
) -> None:
    rules = await _validate(sim, province, timedelta(days=days))
    assert rules == (["R-DOM-3", "R-DOM-3"] if refused else [])


async def test_r_dom_3_activity_refuses_an_expired_domain(sim: RdapSimulator) -> None:
    assert await _validate(sim, Province.BEIJING, -timedelta(days=2)) == ["R-DOM-3", "R-DOM-3"]


async def test_r_dom_3_activity_refuses_a_domain_the_registry_does_not_know(sim: RdapSimulator) -> None:
    sim.strict = True
    order = make_order()
    sim.add("example.com", NOW + timedelta(days=400))  # example.cn stays unknown
    async with RdapClient(sim.url) as client:
        result = await ActivityEnvironment().run(
            ValidationActivities(client).validate_order, PlacedOrder(order=order, as_of=NOW)
        )
    [violation] = result.violations
    assert violation.field == "record.services[0].domains[1]" and "not registered" in violation.message


async def test_activity_fails_while_rdap_is_down_so_temporal_retries(sim: RdapSimulator) -> None:
    sim.fail_next(10, 502)
    async with RdapClient(sim.url) as client:
        with pytest.raises(RdapUnavailable):
            await ActivityEnvironment().run(
                ValidationActivities(client).validate_order, PlacedOrder(order=make_order(), as_of=NOW)
            )


async def test_activities_lists_the_bound_validate_order() -> None:
    activities = ValidationActivities(RdapClient("http://127.0.0.1:9"))
    [validate_order] = activities.activities()
    assert validate_order == activities.validate_order
    assert getattr(validate_order, "__temporal_activity_definition").name == "validate_order"
    await activities.aclose()
