"""One logging setup for every ctrader process.

Human-readable lines by default, JSON lines on request; each line carries the process name and
pid so the interleaved output of the feed, strategy, executor and recorder stays readable.

    from ctrader.core.logs import setup_logging
    setup_logging("feed", fmt="json", level="INFO")
"""
from __future__ import annotations

import logging
import os
import sys
import time

import orjson

_TEXT_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(ctrader_process)s[%(process)d] %(name)s: %(message)s"
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _ProcessNameFilter(logging.Filter):
    """Stamps every record with the ctrader process role (feed, strategy, ...)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.process_name = name

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctrader_process = self.process_name
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": getattr(record, "ctrader_process", "?"),
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != "ctrader_process":
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(process_name: str, fmt: str = "text", level: str = "INFO", stream=None) -> None:
    """Configure the root logger for this process (idempotent: replaces earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ProcessNameFilter(process_name))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    os.environ.setdefault("CTRADER_PROCESS", process_name)
