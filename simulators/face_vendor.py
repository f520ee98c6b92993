"""A stand-in for a face-compare (liveness) vendor: the same API shape, deterministic answers.

``POST /v1/face/compare`` with JSON ``{"image": <base64>, "name": str, "id_number": str}`` answers
``{"request_id", "score": 0–100, "result": "pass" | "fail", "reason"}``:

- ``fail`` when the image cannot be decoded, is smaller than ``min_side`` pixels on a side, or is blank
  (almost uniform: no face to find);
- ``fail`` with a low score when the ID number is on the reject list (the face "does not match");
- otherwise ``pass`` with a score derived from the image and ID number, so the same request always gets the
  same answer.

Malformed requests (not JSON, a field missing or empty, bad base64, an ID number that is not 18 characters)
get HTTP 400 with ``{"request_id", "error"}``. ``GET /healthz`` answers ``ok``.

Run alone: ``python -m simulators.face_vendor --port 8303 --reject 110105194912310021``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from PIL import Image, ImageStat, UnidentifiedImageError

from simulators.server import serve

RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
PASS_THRESHOLD = 70.0


class FaceVendorSimulator:
    """The simulator as an aiohttp app on loopback. ``start(port=0)`` picks a free port; ``url`` is then set."""

    def __init__(self, *, reject_id_numbers: Iterable[str] = (), min_side: int = 200) -> None:
        self.reject_id_numbers = set(reject_id_numbers)
        self.min_side = min_side
        self.requests = 0  # compare requests answered, malformed ones included
        self.url = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)  # a 5 MiB photo is ~7 MiB in base64
        app.router.add_post("/v1/face/compare", self._compare)
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

    async def _compare(self, request: web.Request) -> web.Response:
        self.requests += 1
        raw = await request.read()
        request_id = "face-" + hashlib.sha256(raw).hexdigest()[:16]
        try:
            image, id_number = _parse(raw)
        except ValueError as e:
            return web.json_response({"request_id": request_id, "error": str(e)}, status=400)
        score, reason = await asyncio.to_thread(self._judge, image, id_number)
        result = "pass" if score >= PASS_THRESHOLD else "fail"
        return web.json_response({"request_id": request_id, "score": score, "result": result, "reason": reason})

    def _judge(self, image: bytes, id_number: str) -> tuple[float, str]:
        try:
            with Image.open(io.BytesIO(image)) as im:
                im.load()
                width, height = im.size
                spread = max(ImageStat.Stat(im.convert("L")).stddev)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return 0.0, "image could not be decoded"
        if min(width, height) < self.min_side:
            return 0.0, f"image too small to find a face ({width}x{height}, need {self.min_side} px a side)"
        if spread < 8:
            return 0.0, "no face found: the image is blank"
        digest = int.from_bytes(hashlib.sha256(image + id_number.encode()).digest()[:4], "big")
        if id_number in self.reject_id_numbers:
            return float(20 + digest % 30), "face does not match the ID photo on record"
        return float(75 + digest % 25), ""


def _parse(raw: bytes) -> tuple[bytes, str]:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        raise ValueError("body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    for field in ("image", "name", "id_number"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise ValueError(f"{field} is required (a non-empty string)")
    if not RESIDENT_ID.match(body["id_number"]):
        raise ValueError("id_number must be an 18-character resident ID number")
    try:
        image = base64.b64decode(body["image"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image must be base64") from None
    return image, body["id_number"]


async def _serve(host: str, port: int, reject: list[str]) -> None:
    sim = FaceVendorSimulator(reject_id_numbers=reject)
    await sim.start(host, port)
    print(f"face vendor simulator on {sim.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Face-compare vendor simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8303)
    parser.add_argument("--reject", action="append", default=[], help="an ID number whose face never matches")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.reject))


if __name__ == "__main__":
    main()
