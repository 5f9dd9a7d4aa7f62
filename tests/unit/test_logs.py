"""Log output of the long-running commands (opendots.logs): text, or one JSON object a line with DOTS fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from opendots import logs


def test_a_json_line_carries_time_level_logger_message_and_the_dots_fields_given():
    record = logging.LogRecord("opendots.signal", logging.WARNING, __file__, 1, "mitigation %s ended", ("c/1",), None)
    record.client, record.cuid, record.mid = "alpha", "c", 1
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "opendots.signal"
    assert line["message"] == "mitigation c/1 ended"
    assert (line["client"], line["cuid"], line["mid"]) == ("alpha", "c", 1)
    assert line["time"].endswith("+00:00")


def test_configure_switches_every_root_handler_and_refuses_an_unknown_format():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    try:
        logs.configure("json", logging.INFO)
        logging.getLogger("opendots.test").info("session lost", extra={"client": "alpha"})
        assert json.loads(stream.getvalue())["client"] == "alpha"
        with pytest.raises(ValueError, match="text, json"):
            logs.configure("yaml")  # type: ignore[arg-type]
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
