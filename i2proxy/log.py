"""Logging, configured once: readable key=value lines on a terminal, JSON lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import sys

import structlog

_configured = False


class _NeverRaisingPrintLogger(structlog.PrintLogger):
    """A PrintLogger that drops a line it cannot write (stderr closed, a pipe whose reader died):
    a log call in cleanup code must not skip the cleanup."""

    def msg(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().msg(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _current_stderr_logger(*_args: object) -> structlog.PrintLogger:
    """A PrintLogger on the *current* sys.stderr: one captured at configure time may be closed
    later (pytest's capture, daemonized processes), and logging must never raise."""
    return _NeverRaisingPrintLogger(file=sys.stderr)


def configure(*, json: bool | None = None, level: str = "info") -> None:
    """Set up structlog and the stdlib root logger. Idempotent; later calls reconfigure.

    ``json=None`` picks JSON when stderr is not a terminal (containers, CI, log collectors).
    """
    global _configured
    if json is None:
        json = not sys.stderr.isatty()
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_current_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric_level, stream=sys.stderr, format="%(name)s: %(message)s")
    _configured = True


def get_logger(name: str | None = None, **initial: object) -> structlog.typing.FilteringBoundLogger:
    """A bound logger; configures defaults on first use so library callers need no set-up."""
    if not _configured:
        configure()
    return structlog.get_logger(name, **initial)
