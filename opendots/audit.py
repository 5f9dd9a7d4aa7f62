"""The audit log: every change to the server's state, as who did what to which thing, its value before and after,
and when. Written as one JSON object a line to `[audit] file` (or standard output with `file = "-"`) and kept in
memory (the last KEPT entries) for the dashboard's timeline.

Operator actions are recorded by the admin socket's handler (who: the admin socket, or the console's operator);
changes the signal channel makes on its own or at a client's request (a mitigation created, its status moved by a
mitigator, its end, a session lost or back, a session configuration, telemetry reports) are recorded from the
service's events, and the data channel's (aliases and ACLs) from its change notifications."""

from __future__ import annotations

import collections
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from opendots.errors import ConfigError

log = logging.getLogger(__name__)

KEPT = 200
FINAL = ("attack-mitigation-terminated", "attack-mitigation-withdrawn")
STDOUT = "-"
CLIENT_WITHDRAWN = "dots-client-withdrawn-mitigation"


class AuditLog:
    def __init__(self, sink: TextIO | None = None, clock: Callable[[], float] = time.time, owned: bool = False) -> None:
        self.sink = sink
        self.clock = clock
        self._owned = owned
        self.entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT)
        self.statuses: dict[str, str] = {}
        """The last status recorded per mitigation ("<cuid>/<mid>"): an event repeating it (new counters, an
        operator's change already recorded) is not a change."""
        self.values: dict[tuple[str, str], Any] = {}
        """The last value recorded per (what, subject) by `value_changed` (a session configuration, a count)."""
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @classmethod
    def open(cls, file: Path | str | None, clock: Callable[[], float] = time.time) -> AuditLog:
        """FILE: a path (appended to), "-" (standard output), None (memory only)."""
        if file is None:
            return cls(clock=clock)
        if str(file) == STDOUT:
            return cls(sys.stdout, clock)
        try:
            return cls(open(file, "a", encoding="utf-8", buffering=1), clock, owned=True)
        except OSError as error:
            raise ConfigError(f"[audit] file {file}: {error.strerror or error}") from None

    def record(self, who: str, what: str, subject: str, before: Any, after: Any, **more: Any) -> dict[str, Any]:
        entry = {"at": self.clock(), "who": who, "what": what, "subject": subject, "before": before, "after": after}
        entry.update(more)
        if what.startswith("mitigation") and isinstance(after, str):
            self._remember(subject, after)
        self.entries.append(entry)
        if self.sink is not None:
            try:
                self.sink.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
            except (OSError, ValueError) as error:  # a full disk must not stop the server; say so in its log
                log.error("audit log not written: %s", error)
        for listener in self.listeners:
            listener(entry)
        return entry

    def _remember(self, subject: str, status: str) -> None:
        if status in FINAL:
            self.statuses.pop(subject, None)
        else:
            self.statuses[subject] = status

    def status_changed(self, client: str, subject: str, status: str) -> None:
        """A mitigation's status as the signal channel now reports it: recorded when it differs from the last."""
        before = self.statuses.get(subject)
        if before == status or (before is None and status in FINAL):  # the end of one already recorded as ended
            return
        if status in FINAL:
            who, what = "server", "mitigation ended"
        elif before is None:
            who, what = f"client {client}", "mitigation requested"
        elif CLIENT_WITHDRAWN in (before, status):  # §4.4.4: a DELETE, or a refresh during active-but-terminating
            who, what = f"client {client}", "mitigation status"
        else:  # a mitigator's or the operator's report, a lost session (§4.4.1.3)
            who, what = "server", "mitigation status"
        self.record(who, what, subject, before, status, client=client)

    def value_changed(self, who: str, what: str, subject: str, value: Any, **more: Any) -> None:
        """WHAT of SUBJECT is now VALUE: recorded, with the value before, when it differs from the last one."""
        before = self.values.get((what, subject))
        if before == value:
            return
        self.values[(what, subject)] = value
        self.record(who, what, subject, before, value, **more)

    def close(self) -> None:
        if self._owned and self.sink is not None:
            self.sink.close()
        self.sink = None
