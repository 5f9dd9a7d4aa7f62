"""Log output for the long-running commands (`opendots server`, `opendots client run`, and a gateway's later):
`--log-format text` (one human line: time, level, logger, message) or `json` (one JSON object a line, for
journald, Loki or an ELK pipeline).

Log calls name things in DOTS terms (client name, cuid, mid, targets as text), never Python reprs. A call may add
them as fields, `log.info("...", extra={"client": name, "cuid": cuid, "mid": mid})`: the JSON format gives each its
own key; the text format has them in its message already."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("client", "cuid", "mid", "tmid", "tsid", "peer")
"""Attributes a log call may add with extra= that a JSON line carries as keys of their own."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")


def configure(log_format: LogFormat, level: int | None = None, stream: TextIO | None = None) -> None:
    """Every handler of the root logger writes LOG_FORMAT from now on (one to STREAM, standard error by default,
    when there is none); LEVEL: the root level, unchanged when None."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream))
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))
    if level is not None:
        root.setLevel(level)
