"""Starting a simulator's aiohttp app on loopback, shared by every simulator."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Listen on ``host:port`` (0 picks a free port) and return the runner and the base URL.
    Raises ``OSError`` when the port is taken."""
    # Binding the socket ourselves is how a port-0 server learns its port through public aiohttp API.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    bound_host, bound_port = sock.getsockname()[:2]
    return runner, f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"
