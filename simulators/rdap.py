"""A loopback RDAP server for domains (RFC 9082 paths, RFC 9083 answers) whose expiry dates a test or demo sets.

- ``GET /domain/{name}`` answers ``application/rdap+json``: a domain object with ``events`` (registration,
  expiration, last changed, last update of RDAP database), a registrant and a registrar entity (jCard), name
  servers, a self link. A name the simulator does not know answers, by default, as a domain registered a month ago
  and expiring ``default_validity`` (one year) from now, remembered from then on so local demos just work; with
  ``strict=True`` it answers 404 with an RDAP error object, as a registry does for an unregistered name.
- ``GET /help`` answers the conformance and notices, as RFC 9083 §7 expects.
- ``POST /sim/domains`` adds or replaces domains at run time: ``{"name": "example.com", "expires_at":
  "2026-01-01T00:00:00Z", "registrant": "示例有限公司"}``, or ``{"domains": [...]}`` with several.
- ``DELETE /sim/domains/{name}`` makes a name unregistered (404 from then on, even when not strict).
- ``POST /sim/outage`` with ``{"requests": 2, "status": 503}`` makes the next domain queries fail, to exercise
  retries.
- ``GET /healthz`` answers ``ok``.

Run alone: ``python -m simulators.rdap --port 8302 --domain example.com=2026-01-01``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import idna
from aiohttp import web

from models.identifiers import DomainError, normalise_domain
from simulators.server import serve

RDAP_JSON = "application/rdap+json"
CONFORMANCE = ["rdap_level_0"]


@dataclass
class SimulatedDomain:
    expires_at: datetime
    registered_at: datetime
    registrant: str = "示例科技有限公司"
    registered: bool = True


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _rfc3339(at: datetime) -> str:
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")


class RdapSimulator:
    """The simulator as an aiohttp app on loopback. ``start(port=0)`` picks a free port; ``url`` is then set."""

    def __init__(
        self,
        domains: Mapping[str, datetime] | None = None,
        *,
        strict: bool = False,
        default_validity: timedelta = timedelta(days=365),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.strict = strict
        self.default_validity = default_validity
        self.clock = clock
        self.domains: dict[str, SimulatedDomain] = {}
        self.queries: list[str] = []  # every name asked for, in order
        self.url = ""
        self._outage: tuple[int, int] = (0, 503)  # (requests left to fail, status)
        self._runner: web.AppRunner | None = None
        for name, expires_at in (domains or {}).items():
            self.add(name, expires_at)

    # ------------------------------------------------------------------------------------------------ control

    def add(
        self,
        name: str,
        expires_at: datetime,
        *,
        registrant: str | None = None,
        registered_at: datetime | None = None,
    ) -> None:
        """Register (or re-register) ``name`` expiring at ``expires_at``."""
        key = normalise_domain(name)
        self.domains[key] = SimulatedDomain(
            expires_at=_utc(expires_at),
            registered_at=_utc(registered_at or min(self.clock(), _utc(expires_at)) - timedelta(days=30)),
            registrant=registrant or SimulatedDomain.registrant,
        )

    def remove(self, name: str) -> None:
        """Make ``name`` unregistered: 404 from now on."""
        key = normalise_domain(name)
        now = self.clock()
        self.domains[key] = SimulatedDomain(expires_at=now, registered_at=now, registered=False)

    def fail_next(self, requests: int, status: int = 503) -> None:
        self._outage = (requests, status)

    # ----------------------------------------------------------------------------------------------- serving

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/domain/{name}", self._domain)
        app.router.add_get("/help", self._help)
        app.router.add_post("/sim/domains", self._add)
        app.router.add_delete("/sim/domains/{name}", self._remove)
        app.router.add_post("/sim/outage", self._set_outage)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner, self.url = await serve(self.app(), host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _help(self, _: web.Request) -> web.Response:
        return _rdap(
            {
                "rdapConformance": CONFORMANCE,
                "notices": [
                    {
                        "title": "icpflow RDAP simulator",
                        "description": ["Domain look-ups only: GET /domain/{name}. Dates are set by the test."],
                    }
                ],
            }
        )

    async def _domain(self, request: web.Request) -> web.Response:
        raw = request.match_info["name"]
        self.queries.append(raw)
        left, status = self._outage
        if left > 0:
            self._outage = (left - 1, status)
            return _error(status, "Service Unavailable", "simulated outage")
        try:
            name = normalise_domain(raw)
        except DomainError as e:
            return _error(400, "Bad Request", f"{raw!r} is not a domain name: {e}")
        found = self.domains.get(name)
        if found is None and not self.strict:
            now = self.clock()
            found = SimulatedDomain(expires_at=now + self.default_validity, registered_at=now - timedelta(days=30))
            self.domains[name] = found
        if found is None or not found.registered:
            return _error(404, "Not Found", f"{name} is not registered")
        return _rdap(self._domain_object(name, found, str(request.url)))

    def _domain_object(self, name: str, d: SimulatedDomain, self_url: str) -> dict[str, Any]:
        changed = max(d.registered_at, min(self.clock(), d.expires_at) - timedelta(days=1))
        unicode_name = idna.decode(name)
        handle = name.upper().replace(".", "_")
        obj: dict[str, Any] = {
            "objectClassName": "domain",
            "rdapConformance": CONFORMANCE,
            "handle": f"{handle}-SIM",
            "ldhName": name,
            "status": ["active", "client transfer prohibited"],
            "events": [
                {"eventAction": "registration", "eventDate": _rfc3339(d.registered_at)},
                {"eventAction": "expiration", "eventDate": _rfc3339(d.expires_at)},
                {"eventAction": "last changed", "eventDate": _rfc3339(changed)},
                {"eventAction": "last update of RDAP database", "eventDate": _rfc3339(self.clock())},
            ],
            "entities": [
                {
                    "objectClassName": "entity",
                    "handle": f"{handle}-REGISTRANT",
                    "roles": ["registrant"],
                    "vcardArray": [
                        "vcard",
                        [
                            ["version", {}, "text", "4.0"],
                            ["fn", {}, "text", d.registrant],
                            ["kind", {}, "text", "org"],
                            ["adr", {"cc": "CN"}, "text", ["", "", "", "", "", "", "CN"]],
                        ],
                    ],
                },
                {
                    "objectClassName": "entity",
                    "handle": "9999",
                    "roles": ["registrar"],
                    "publicIds": [{"type": "IANA Registrar ID", "identifier": "9999"}],
                    "vcardArray": [
                        "vcard",
                        [["version", {}, "text", "4.0"], ["fn", {}, "text", "Simulated Registrar"]],
                    ],
                },
            ],
            "nameservers": [
                {"objectClassName": "nameserver", "ldhName": "ns1.dns-sim.invalid"},
                {"objectClassName": "nameserver", "ldhName": "ns2.dns-sim.invalid"},
            ],
            "secureDNS": {"delegationSigned": False},
            "links": [{"value": self_url, "rel": "self", "href": self_url, "type": RDAP_JSON}],
            "notices": [{"title": "Simulated data", "description": ["This answer comes from the icpflow simulator."]}],
        }
        if unicode_name != name:
            obj["unicodeName"] = unicode_name
        return obj

    async def _add(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            items = body["domains"] if isinstance(body, dict) and "domains" in body else [body]
            added = []
            for item in items:
                expires_at = datetime.fromisoformat(str(item["expires_at"]))
                registered_at = datetime.fromisoformat(item["registered_at"]) if item.get("registered_at") else None
                self.add(item["name"], expires_at, registrant=item.get("registrant"), registered_at=registered_at)
                added.append(normalise_domain(item["name"]))
        except (ValueError, KeyError, TypeError) as e:
            return _error(400, "Bad Request", f"expected {{'name', 'expires_at', 'registrant'?}}: {e}")
        return web.json_response({"added": added})

    async def _remove(self, request: web.Request) -> web.Response:
        try:
            self.remove(request.match_info["name"])
        except DomainError as e:
            return _error(400, "Bad Request", str(e))
        return web.json_response({"removed": normalise_domain(request.match_info["name"])})

    async def _set_outage(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.fail_next(int(body.get("requests", 1)), int(body.get("status", 503)))
        except (ValueError, TypeError, AttributeError) as e:
            return _error(400, "Bad Request", f"expected {{'requests': n, 'status': 5xx}}: {e}")
        return web.json_response({"failing_next": self._outage[0], "status": self._outage[1]})


def _rdap(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=RDAP_JSON)


def _error(status: int, title: str, description: str) -> web.Response:
    body = {"errorCode": status, "title": title, "description": [description], "rdapConformance": CONFORMANCE}
    return _rdap(body, status)


def main() -> None:
    parser = argparse.ArgumentParser(description="RDAP simulator (domain expiry dates for icpflow)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8302)
    parser.add_argument("--strict", action="store_true", help="unknown domains answer 404")
    parser.add_argument("--domain", action="append", default=[], metavar="NAME=YYYY-MM-DD", help="a known domain")
    args = parser.parse_args()
    domains = {}
    for item in args.domain:
        name, _, expiry = item.partition("=")
        domains[name] = datetime.fromisoformat(expiry)

    async def serve() -> None:
        sim = RdapSimulator(domains, strict=args.strict)
        await sim.start(args.host, args.port)
        print(f"RDAP simulator on {sim.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
