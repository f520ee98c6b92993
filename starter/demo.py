"""The demo order ``icpflow dev up`` places, the photos its applicant uploads, and the people who play it.

The order is what a real backend would send for the most common modification: a Beijing company's website gets a
new person in charge (ID card front and back, plus face verification). Every identifier passes validation (USCC and
resident-ID check characters, Beijing mobiles, distinct numbers for each role). Each call makes a fresh filing and
fresh people, so demos never collide with an order already in progress for the same filing (R-LOCK-1) and the
authenticity check never sees a photo another filing uploaded.
"""

from __future__ import annotations

import asyncio
import functools
import io
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from PIL import Image
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from stdnum.cn import ric

from models.documents import DocumentStatus
from models.messages import Confirm, InitialReviewDecision, SmsEventKind, SmsVerificationEvent
from models.order import (
    Change,
    ChangeField,
    Entity,
    EntityType,
    FilingRecord,
    IdType,
    OrderKind,
    Person,
    PlaceOrder,
    Province,
    Service,
)
from models.settings import Settings
from models.stages import PIPELINE, Stage, Status
from models.state import OrderState
from models.timing import TimingPolicy
from simulators.regulator import SMS_FROM, code_from_sms
from starter.cli import ApiTransport, CliError, DirectTransport, Transport, china_time, timeline_table

# A valid unified social credit code (DOMAIN.md's example) and a Beijing mobile prefix (1380013…).
DEMO_CREDIT_CODE = "91350100M000100Y43"
BEIJING_MOBILE_PREFIX = "1380013"
SMS_CLOCK_SLACK = timedelta(seconds=30)


def resident_id(region: str, born: date, sequence: int) -> str:
    """A resident ID number (GB 11643-1999) with its check character."""
    body = f"{region}{born:%Y%m%d}{sequence % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def demo_order(
    *, serial: int | None = None, timing: TimingPolicy | None = None, order_id: str | None = None
) -> PlaceOrder:
    """A valid website order in Beijing changing the website's person in charge.

    ``serial`` is the filing's 8-digit serial (default: derived from the clock, so each demo gets its own filing);
    ``timing`` defaults to the compressed demo profile, in which the whole order takes a few minutes.
    """
    serial = serial if serial is not None else 10_000_000 + int(time.time()) % 90_000_000
    rng = random.Random(serial)
    number = f"京ICP备{serial:08d}号"
    website_number = f"{number}-1"

    def mobile() -> str:
        return f"{BEIJING_MOBILE_PREFIX}{rng.randrange(10_000):04d}"

    mobiles = iter(dict.fromkeys(mobile() for _ in range(64)))  # distinct numbers, one per role and purpose

    def person(name: str, born: date, email: str, *, legal_representative: bool = False) -> Person:
        return Person(
            name=name,
            id_type=IdType.RESIDENT_ID_CARD,
            id_number=resident_id("110105", born, rng.randrange(1, 999)),
            mobile=next(mobiles),
            emergency_mobile=next(mobiles),
            email=email,
            is_legal_representative=legal_representative,
        )

    entity = Entity(
        name="示例科技有限公司",
        entity_type=EntityType.ENTERPRISE,
        id_type=IdType.BUSINESS_LICENCE,
        id_number=DEMO_CREDIT_CODE,
        address="北京市朝阳区示例路1号",
        person_in_charge=person("张伟", date(1975, 3, 14), "zhangwei@example.com", legal_representative=True),
    )
    website = Service(
        filing_number=website_number,
        kind=OrderKind.WEBSITE,
        name="示例网站",
        domains=["example.com", "example.cn"],
        content_category="general",
        ip_addresses=["203.0.113.10"],
        person_in_charge=person("李娜", date(1988, 6, 1), "lina@example.com"),
    )
    record = FilingRecord(entity_filing_number=number, province=Province.BEIJING, entity=entity, services=[website])
    newcomer = person("王芳", date(1992, 11, 23), "wangfang@example.com")
    return PlaceOrder(
        order_id=order_id or f"demo-{serial}",
        kind=OrderKind.WEBSITE,
        filing_number=website_number,
        record=record,
        changes=[Change(field=ChangeField.SERVICE_PERSON_IN_CHARGE, service=website_number, new_person=newcomer)],
        timing=timing or TimingPolicy.compressed(),
        placed_by="icpflow-demo",
    )


def colour_photo(seed: int | str, width: int = 1024, height: int = 768) -> bytes:
    """A JPEG that passes the authenticity checks: large enough, in colour, not blank, unique per ``seed``."""
    rng = random.Random(seed)
    cells_x, cells_y = width // 16, height // 16
    tiles = Image.frombytes("RGB", (cells_x, cells_y), rng.randbytes(cells_x * cells_y * 3))
    image = tiles.resize((width, height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# ================================================================================================= the players


class DemoFailed(Exception):
    """The demo order did not reach ``completed``: the message says where it stopped and why."""


@dataclass
class DemoPlayers:
    """The people around the demo order, each acting through the transport a real caller would use: the backend
    (placing, forwarding the applicant's uploads, confirmation and SMS code) and a support reviewer."""

    backend: Transport
    reviewer: Transport
    sms_url: str
    order: PlaceOrder
    say: Callable[[str], None]
    done: set[tuple[str, object]] = field(default_factory=set)
    refusals: int = 0

    async def act(self, state: OrderState) -> None:
        """Do whatever the order waits for now (at most once per occasion)."""
        oid = state.order_id
        if state.status is not Status.ACTIVE:
            return
        if state.stage is Stage.DOCUMENT_COLLECTION:
            for doc in state.documents:
                occasion = ("upload", (doc.key, doc.failures))  # a failed document is uploaded anew
                if doc.status not in (DocumentStatus.MISSING, DocumentStatus.FAILED) or occasion in self.done:
                    continue
                photo = await asyncio.to_thread(colour_photo, f"{oid}:{doc.key}:{doc.failures}")
                upload = functools.partial(
                    self.backend.upload, oid, doc.key, photo, f"{doc.kind.value}.jpg", "image/jpeg"
                )
                await self._once(
                    occasion, upload, f"applicant uploaded {doc.key} ({len(photo) // 1024} KiB colour photo)"
                )
        elif state.stage is Stage.CONFIRMATION and not state.confirmed:
            runs = sum(1 for t in state.timeline if t.stage is Stage.CONFIRMATION)
            await self._once(
                ("confirm", runs),
                lambda: self.backend.confirm(oid, Confirm(actor="applicant")),
                "applicant confirmed the information",
            )
        elif state.stage is Stage.INITIAL_REVIEW:
            runs = sum(1 for t in state.timeline if t.stage is Stage.INITIAL_REVIEW)
            decision = InitialReviewDecision(reviewer="reviewer-demo", approved=True)
            await self._once(
                ("review", runs), lambda: self.reviewer.review(oid, decision), "reviewer approved the initial review"
            )
        elif state.stage is Stage.SMS_VERIFICATION:
            sub = state.current_submission
            if sub is None or not sub.submission_id or sub.outcome or ("sms", sub.attempt) in self.done:
                return
            code = await self._code_since(sub.submitted_at)
            if code is None:
                return  # the text is on its way
            event = SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code=code)
            await self._once(
                ("sms", sub.attempt),
                lambda: self.backend.sms_verification(oid, event),
                f"applicant entered the code {code} texted from {SMS_FROM}",
            )

    async def _once(self, occasion: tuple[str, object], action: Callable[[], Awaitable[object]], done: str) -> None:
        """Do ``action`` unless it was done for this occasion; say ``done`` when it succeeded."""
        if occasion in self.done:
            return
        try:
            await action()
        except CliError as e:
            if e.exit_code != 1:
                raise
            # The order moved on between reading its state and acting (or refused): look again, a few times.
            self.refusals += 1
            self.say(f"[yellow]refused: {e.message}[/yellow]")
            if self.refusals > 10:
                raise DemoFailed(f"the order kept refusing the demo's actions; last: {e.message}") from None
            return
        self.done.add(occasion)
        self.say(done)

    async def _code_since(self, since: datetime | None) -> str | None:
        """The latest verification code texted from 12381 to the contact person for the submission made at
        ``since``; None while it has not arrived."""
        mobile = self.order.contact_person().mobile
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.sms_url}/sim/messages", params={"to": mobile})
            response.raise_for_status()
        for message in reversed(response.json().get("messages", [])):
            if message.get("from") != SMS_FROM:
                continue
            sent = parsedate_to_datetime(message["date_created"])
            # The workflow notes the submission time after the regulator has texted, and the sink's clock has
            # whole seconds: allow some slack. An earlier attempt's text is minutes older (its window expired).
            if since is not None and sent < since - SMS_CLOCK_SLACK:
                return None
            return code_from_sms(message["body"])
        return None


class Progress:
    """The order's way through its stages: a live table on a terminal, one line per transition otherwise."""

    def __init__(self, console: Console, order_id: str) -> None:
        self.console = console
        self.order_id = order_id
        self.started = time.monotonic()
        self.shown = 0
        self.state: OrderState | None = None
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def say(self, line: str) -> None:
        self.console.print(f"  [dim]{self._elapsed()}[/dim] {line}", soft_wrap=True)

    def update(self, state: OrderState) -> None:
        self.state = state
        if self.live is not None:
            self.live.update(self._render())
            return
        for t in state.timeline[self.shown :]:
            actor = f"{t.actor.value} ({t.actor_name})" if t.actor_name else t.actor.value
            self.console.print(
                f"  [dim]{self._elapsed()}[/dim] [bold]{t.stage.value}[/bold] ({t.status.value}) "
                f"at {china_time(t.at)} by {actor}: {t.reason}",
                soft_wrap=True,
            )
        self.shown = len(state.timeline)

    def _elapsed(self) -> str:
        return f"+{time.monotonic() - self.started:5.1f}s"

    def _render(self) -> RenderableType:
        state = self.state
        if state is None:
            return Text(f"placing demo order {self.order_id}…")
        reached = {t.stage for t in state.timeline}
        stages = Text()
        for stage in PIPELINE:
            style = "bold cyan" if stage is state.stage else ("green" if stage in reached else "dim")
            stages.append(f" {stage.value} ", style=style)
            if stage is not PIPELINE[-1]:
                stages.append("›", style="dim")
        header = Text.assemble(
            (f"order {state.order_id}", "bold"),
            f"  {state.stage.value} ({state.status.value}), waiting on {state.waiting_on.value}  ",
            (self._elapsed(), "dim"),
        )
        return Group(header, stages, timeline_table(state, title="Timeline (China time)"))


async def play_demo(
    settings: Settings,
    api_url: str | None,
    *,
    timeout: float,
    console: Console | None = None,
    order: PlaceOrder | None = None,
) -> None:
    """Place the demo order and play everyone around it until the administration approves it and the order is
    ``completed``. Through the HTTP API at ``api_url`` (the backend's and a reviewer's dev tokens), or straight to
    Temporal when ``api_url`` is None. Raises :class:`DemoFailed` when the order ends otherwise, pauses, or takes
    longer than ``timeout`` seconds. ``order`` replaces the :func:`demo_order` (tests)."""
    console = console or Console(highlight=False)
    order = order or demo_order()
    if api_url is not None:
        backend: Transport = ApiTransport(api_url, "dev-backend")
        reviewer: Transport = ApiTransport(api_url, "dev-support")
        via = f"the API at {api_url}"
    else:
        backend = reviewer = DirectTransport(settings)
        via = f"Temporal at {settings.temporal_address}"
    sms_url = (settings.twilio_base_url or "http://127.0.0.1:8304").rstrip("/")
    console.print(
        f"[bold]demo[/bold]: a website order in Beijing changing its person in charge, through {via}", soft_wrap=True
    )
    started = time.monotonic()
    try:
        with Progress(console, order.order_id) as progress:
            players = DemoPlayers(backend, reviewer, sms_url, order, progress.say)
            state = await backend.place(order)
            progress.say(f"backend placed order {state.order_id} on {state.filing_number}")
            while True:
                progress.update(state)
                if state.stage is Stage.COMPLETED:
                    break
                if state.stage.terminal or state.stage is Stage.CORRECTION or state.status is Status.PAUSED:
                    raise DemoFailed(_stuck(state))
                if time.monotonic() - started > timeout:
                    raise DemoFailed(
                        f"order {state.order_id} still at {state.stage.value} ({state.status.value}, waiting on "
                        f"{state.waiting_on.value}) after {timeout:.0f} s"
                    )
                await players.act(state)
                await asyncio.sleep(0.5)
                state = await backend.state(order.order_id)
    except CliError as e:
        raise DemoFailed(e.message) from None
    finally:
        await backend.aclose()
        if reviewer is not backend:
            await reviewer.aclose()
    console.print(
        f"[green]✓ demo order {order.order_id} approved by the administration and completed in "
        f"{time.monotonic() - started:.0f} s[/green]"
    )


def _stuck(state: OrderState) -> str:
    why = state.paused_reason or "; ".join(
        [v.message for v in state.violations] + state.rejection_reasons + state.review_reasons
    )
    return f"order {state.order_id} stopped at {state.stage.value} ({state.status.value})" + (f": {why}" if why else "")
