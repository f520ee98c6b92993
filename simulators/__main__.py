"""``python -m simulators``: the outside world on loopback, for running the stack locally.

Starts the regulator (auto mode), the SMS sink, the SMTP sink (with its mail view), the RDAP server and the
face-verification vendor on the ports of the ``ICPFLOW_*`` settings and runs until Ctrl-C. The regulator texts
through the real twilio client into the SMS sink, with the same credentials the worker uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from urllib.parse import urlsplit

from models.settings import Settings, get_settings
from models.timing import TimingPolicy
from simulators.face_vendor import FaceVendorSimulator
from simulators.rdap import RdapSimulator
from simulators.regulator import RegulatorSimulator
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink

MAIL_VIEW_PORT = 8026
# One calendar day lasts 10 s, like TimingPolicy.compressed(), so a demo order reaches its verdict in minutes.
DEFAULT_TIME_FACTOR = "1/8640"


@dataclass
class _Service:
    name: str
    port: int
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    where: Callable[[], str]


def _port(url: str | None, default: int) -> int:
    return (urlsplit(url).port if url else None) or default


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--time-factor",
        default=DEFAULT_TIME_FACTOR,
        help="scale of simulated durations, e.g. 1 (real time) or 1/8640 (a day in 10 s); default %(default)s",
    )
    parser.add_argument("--approve-ratio", type=float, default=0.8, help="share of approvals; default %(default)s")
    parser.add_argument(
        "--sms-window-seconds",
        type=float,
        default=None,
        help="time to enter the SMS code; default 24 h at --time-factor 1, else the compressed demo profile's "
        "window (so the regulator never expires a code the workflow still waits for)",
    )
    parser.add_argument("--seed", type=int, default=None, help="make codes and verdicts reproducible")
    parser.add_argument(
        "--mail-view-port", type=int, default=MAIL_VIEW_PORT, help="port of the mail view; default %(default)s"
    )
    return parser.parse_args(argv)


def _services(settings: Settings, args: argparse.Namespace) -> list[_Service]:
    time_factor = float(Fraction(args.time_factor))
    if args.sms_window_seconds is not None:
        sms_window = timedelta(seconds=args.sms_window_seconds)
    elif time_factor == 1.0:
        sms_window = timedelta(hours=24)
    else:
        sms_window = TimingPolicy.compressed().sms_window

    auth_token = settings.twilio_auth_token.get_secret_value()
    sms = SmsSink(settings.twilio_account_sid, auth_token)
    smtp = SmtpSink()
    regulator = RegulatorSimulator.with_twilio(
        settings.regulator_api_key.get_secret_value(),
        settings.twilio_account_sid,
        auth_token,
        settings.twilio_base_url,
        mode="auto",
        time_factor=time_factor,
        approve_ratio=args.approve_ratio,
        sms_window=sms_window,
        seed=args.seed,
    )
    rdap = RdapSimulator()
    face = FaceVendorSimulator()
    sms_port = _port(settings.twilio_base_url, 8304)
    regulator_port = _port(settings.regulator_url, 8301)
    rdap_port = _port(settings.rdap_base_url, 8302)
    face_port = _port(settings.face_verification_url, 8303)
    host = args.host
    return [
        # The SMS sink first: the regulator texts through it.
        _Service(
            "SMS sink",
            sms_port,
            lambda: sms.start(host, sms_port),
            sms.stop,
            lambda: f"{sms.url}  (messages: {sms.url}/sim/messages)",
        ),
        _Service(
            "SMTP sink",
            settings.smtp_port,
            lambda: smtp.start(host, settings.smtp_port),
            smtp.stop,
            lambda: f"smtp://{smtp.host}:{smtp.port}",
        ),
        _Service(
            "mail view",
            args.mail_view_port,
            lambda: smtp.start_view(host, args.mail_view_port),
            smtp.stop,
            lambda: f"{smtp.view_url}/sim/mail",
        ),
        _Service(
            "regulator",
            regulator_port,
            lambda: regulator.start(host, regulator_port),
            regulator.stop,
            lambda: (
                f"{regulator.url}  (auto mode, time factor {args.time_factor}, SMS window {sms_window}; "
                f"submissions: {regulator.url}/sim/submissions)"
            ),
        ),
        # Validation asks RDAP for every domain's expiry; unknown names answer as registered for a year.
        _Service(
            "RDAP",
            rdap_port,
            lambda: rdap.start(host, rdap_port),
            rdap.stop,
            lambda: f"{rdap.url}  (e.g. {rdap.url}/domain/example.com)",
        ),
        _Service(
            "face vendor",
            face_port,
            lambda: face.start(host, face_port),
            face.stop,
            lambda: f"{face.url}  (POST /v1/face/compare)",
        ),
    ]


async def _run(args: argparse.Namespace) -> int:
    started: list[_Service] = []
    try:
        for service in _services(get_settings(), args):
            try:
                await service.start()
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                print(f"simulators: port {service.port} ({service.name}) is already in use", file=sys.stderr)
                return 1
            started.append(service)
            print(f"{service.name:<11} {service.where()}", flush=True)
        print("simulators running; Ctrl-C stops them", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        for service in reversed(started):
            await service.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
