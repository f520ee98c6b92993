"""A PostgreSQL cluster of the test's own (never the machine's shared server): ``initdb`` into a temporary
directory, started on a free loopback port with its socket in that directory, stopped and started again at will.

Run as root (as in CI containers), the server runs as the ``postgres`` OS user through ``runuser``, since
PostgreSQL refuses to run as root. Every call is an asyncio subprocess, so a worker in the same event loop keeps
running while the cluster starts or stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

SEARCHED = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL's server tools are not installed."""
    found = shutil.which("initdb")
    candidates = ([Path(found).parent] if found else []) + SEARCHED
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def unavailable_reason() -> str | None:
    if postgres_bin() is None:
        return "initdb/pg_ctl not installed: the database fault test needs a PostgreSQL cluster of its own"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot be started as the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {output.decode()[-2000:]}")

    async def init(self) -> None:
        await self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options)

    async def stop(self, mode: str = "immediate") -> None:
        """``immediate``: the server dies at once, as in a crash; clients see their connections drop."""
        await self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))


def _private_root() -> Path:
    """A fresh temporary folder only the server's user can enter (initdb insists on it)."""
    root = Path(tempfile.mkdtemp(prefix="icpflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    root.chmod(0o700)
    return root


@asynccontextmanager
async def postgres_cluster() -> AsyncIterator[Cluster]:
    folder = postgres_bin()
    assert folder is not None, unavailable_reason()
    root = _private_root()
    cluster = Cluster(bin=folder, root=root, port=_free_port())
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped (or never started)
            await cluster.stop("fast")
        shutil.rmtree(root, ignore_errors=True)
