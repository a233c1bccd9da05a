"""Structured logging (structlog over the standard library) with the request id in every line."""

from __future__ import annotations

import importlib
import logging
import pickle
import sys

import structlog

#: The level and format the last ``configure_logging`` set, for the processes a command starts.
_CONFIGURED: list[tuple[str, bool]] = []


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Route structlog and stdlib loggers (uvicorn, sqlalchemy) to one formatter on stderr."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log is replaced by ours, which carries the request id.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our own calls are logged by us
    # Alembic lists its plugins at INFO when imported: noise before every command's output,
    # and from each process `vnehr import` starts
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # WeasyPrint narrates every step at INFO and warns about CSS it skips: errors only
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # SQL echo (VNEHR_DB_ECHO): SQLAlchemy gives its logger a handler on stdout when it has
    # none, between the lines a command prints; with one that drops nothing, its lines reach ours
    logging.getLogger("sqlalchemy.engine.Engine").handlers[:] = [logging.NullHandler()]
    _CONFIGURED[:] = [(level, json)]


def configured() -> tuple[str, bool]:
    """The level and format logging was configured with (the defaults if it was not)."""
    return _CONFIGURED[0] if _CONFIGURED else ("INFO", False)


def start_process(logs: tuple[str, bool], initializer: str, arguments: bytes) -> None:
    """A process pool's initializer: configure logging as ``logs`` says, then import
    ``initializer`` (``module:function``) and call it with ``arguments`` (a pickled tuple). A
    spawned process imports everything afresh, and structlog prints to stdout until configured:
    a module that logs when imported (``compiled_reader_stale``) would write into the command's
    output. The function is named and its arguments pickled so that neither is unpickled, and
    nothing imported, before logging is set up."""
    configure_logging(*logs)
    module, _, name = initializer.partition(":")
    getattr(importlib.import_module(module), name)(*pickle.loads(arguments))  # noqa: S301


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
