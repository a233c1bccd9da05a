"""Serving the app on several worker processes, each with a listening socket of its own (D54).

uvicorn's workers share one listening socket. Each worker's event loop accepts everything
waiting when it wakes, so a burst of new connections (clients starting together, a proxy
opening its keep-alive pool) can land on one worker while the others idle: measured here,
one API worker did 8.8 s of work in 10 s and the other almost none, half the machine unused.
On Linux every worker now binds its own socket with ``SO_REUSEPORT`` and the kernel spreads
new connections over them. Elsewhere, or with one worker, uvicorn runs as usual.

Each worker process configures logging, as the command did, before it imports the app (D128).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import structlog
import uvicorn

from vnehr.kit.logging import configure_logging, configured

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


class WorkerConfig(uvicorn.Config):
    """uvicorn's configuration, which also sets up logging in each worker process, as the
    command did, before the worker imports the app. A spawned worker imports everything
    afresh, and structlog prints to stdout, in its console format and at every level, until
    configured: a module that logs when imported (``compiled_reader_stale``, D123) wrote there,
    unlike everything after it. uvicorn calls ``configure_logging`` when the worker starts,
    before it loads the app; ``logs`` is set after ``__init__`` (which calls it too), so the
    supervisor, which the command configured, is not configured again."""

    logs: tuple[str, bool] | None = None

    def configure_logging(self) -> None:
        super().configure_logging()
        if self.logs is not None:
            configure_logging(*self.logs)


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, ...)``, with a socket per worker when there are several (D54), each
    worker logging as the command does (its level and format) from its first line."""
    if workers <= 1:  # the app runs in this process, whose logging the command configured
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    from uvicorn.supervisors import Multiprocess

    config = WorkerConfig(app, host=host, port=port, workers=workers, **options)
    config.logs = configured()
    sockets: Any
    if reuse_port_supported():
        # A port already in use (by anything, another vnehr included) fails here, once: a
        # socket without SO_REUSEPORT cannot join the group of one that has it.
        listen(host, port, share=False).close()
        sockets = [OwnSocket(host, port)]
    else:  # one socket the workers share, as uvicorn.run binds it
        sockets = [config.bind_socket()]
    Multiprocess(config, sockets=sockets).run()
