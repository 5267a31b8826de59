"""Logging: structured JSON lines for the daemon, short human lines for the CLI.

Every module logs through the standard `logging` API; structlog's ProcessorFormatter renders the
records. A last redaction step masks anything shaped like an Anthropic key, so a key that slipped
into a message by mistake still never reaches the log (the code itself never logs one).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
# A bearer token in a header value (the OTLP token in Claude Code's managed settings).
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}\\]+")

LogFormat = Literal["json", "console"]

# The daemon's APScheduler logs here ("Added job", "Removed job", "Scheduler started"...).
SCHEDULER_LOGGER = "claresia_sync.scheduler"
# Loggers whose INFO lines are routine detail, not news for an operator: logged at DEBUG.
_CHATTY = ("apscheduler", SCHEDULER_LOGGER, "alembic.runtime.migration")


class _ChatterToDebug(logging.Filter):
    """APScheduler reports every job it adds, removes or runs at INFO (about 40% of a daemon's
    lines) and alembic its dialect on each schema check: those records become DEBUG records,
    shown only when the root level is DEBUG. Their warnings and errors keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(_CHATTY):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


@contextmanager
def log_context(
    *, org_id: str | None = None, tenant: str | None = None, job_id: int | None = None
) -> Iterator[None]:
    """Within the block (and the tasks and threads it starts), every log line carries these
    fields as keys of its own (`org_id`, `tenant`, `job_id`, as docs/deployment.md promises);
    None leaves a field out. Nested blocks add to the outer ones and restore them on exit."""
    fields = {
        k: v
        for k, v in {"org_id": org_id, "tenant": tenant, "job_id": job_id}.items()
        if v is not None
    }
    tokens = structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def mask_keys(text: str) -> str:
    """`sk-ant-admin01-…abcd` keeps only the kind and the last 4 chars; `Bearer ****` nothing."""
    text = _BEARER.sub(r"\1****", text)
    return _KEY_SHAPE.sub(lambda m: f"sk-ant-…{m.group()[-4:]}", text)


def _redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_keys(value)
        elif isinstance(value, BaseException):
            event[key] = mask_keys(repr(value))
    return event


def configure_logging(fmt: LogFormat = "console", level: int | str = logging.INFO) -> None:
    """Route all stdlib logging to stderr, rendered as JSON lines or as plain text."""
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.contextvars.merge_contextvars,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[Any] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ]
    else:
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact,
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_ChatterToDebug())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpcore/httpx log every request at DEBUG with headers in some versions, the anthropic SDK
    # its request options with the body (a managed-settings write holds an OTLP token): quiet.
    for noisy in ("httpcore2", "httpx2", "httpcore", "httpx", "anthropic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
