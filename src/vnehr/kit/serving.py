"""Serving the app on several worker processes, each with a listening socket of its own (D54).

uvicorn's workers share one listening socket. Each worker's event loop accepts everything
waiting when it wakes, so a burst of new connections (clients starting together, a proxy
opening its keep-alive pool) can land on one worker while the others idle: measured here,
one API worker did 8.8 s of work in 10 s and the other almost none, half the machine unused.
On Linux every worker now binds its own socket with ``SO_REUSEPORT`` and the kernel spreads
new connections over them. Elsewhere, or with one worker, uvicorn runs as usual.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: uvicorn's exit code for a worker that cannot start: its supervisor then stops, not retries.
STARTUP_FAILURE = 3


def reuse_port_supported() -> bool:
    """Whether the kernel balances connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class OwnSocket:
    """Stands in uvicorn's socket list: each worker process, unpickling it, gets a listening
    socket of its own on the shared port (so the supervisor's restarts get one too)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return (listen, (self.host, self.port))


def listen(host: str, port: int, *, share: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening: the worker's server listens on it
    once the app has started, so the kernel sends it no connection before it can take them.
    ``share``: other workers' sockets share the port (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.error("bind_failed", host=host, port=port, error=str(exc))
        sys.exit(STARTUP_FAILURE)
    return sock


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, ...)``, with a socket per worker when there are several (D54)."""
    import uvicorn

    if workers <= 1 or not reuse_port_supported():
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, host=host, port=port, workers=workers, **options)
    # A port already in use (by anything, another vnehr included) fails here, once: a socket
    # without SO_REUSEPORT cannot join the group of one that has it.
    listen(host, port, share=False).close()
    sockets: Any = [OwnSocket(host, port)]
    Multiprocess(config, sockets=sockets).run()
