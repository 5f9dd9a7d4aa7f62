"""The client's half of DOTS telemetry (RFC 9244), sans-I/O, beside DotsClientCore: it numbers setups ('tsid', §7)
and reports ('tmid', §8.2) durably and monotonically, remembers which setup of each kind it installed so that a
(re)connection re-sends them (the server may have restarted without them), and learns from the answers.

A client keeps one setup per kind (current-config, total-pipe-capacity, baseline): a newer tsid of a kind replaces
the older one at the server (§7.1.2, §7.2.1, §7.3.1), so the client needs only the newest. The agent installs the
`[telemetry]` table of client.toml (`setups_from_table`) at start through `configure`; verbs change the same set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from opendots.signal.client.core.events import (
    Event,
    SendRequest,
    TelemetryReceived,
    TelemetryRefused,
    TelemetryReported,
    TelemetrySetupInstalled,
    TelemetrySetupRemoved,
)
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.core.state import ClientState
from opendots.signal.client.core.telemetry_bodies import (
    KINDS,
    PIPE,
    TELEMETRY,
    TELEMETRY_SETUP,
    TelemetryError,
    baseline,
    baseline_entry,
    config_entry,
    pipe_entry,
    report_delete_request,
    report_get_request,
    report_put_request,
    setup_delete_request,
    setup_get_request,
    setup_kind,
    setup_put_request,
)

# [telemetry] keys of client.toml (the unknown ones are refused, as everywhere in the configuration).
CONFIG_KEYS = (
    "measurement_interval",
    "measurement_sample",
    "low_percentile",
    "mid_percentile",
    "high_percentile",
    "unit_classes",
    "server_originated_telemetry",
)
TABLE_KEYS = (*CONFIG_KEYS, "vendor_id", "pipe", "baseline")
PIPE_KEYS = ("link_id", "capacity")
BASELINE_KEYS = ("id", "target_prefix", "normal", "peak")


def _table_list(value: Any, name: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TelemetryError(f"{name} must be an array of tables ([[telemetry.{name}]])")
    for item in value:
        unknown = [key for key in item if key not in keys]
        if unknown:
            raise TelemetryError(f"[[telemetry.{name}]]: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    return value


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str | int):
        return [str(value)]
    if not isinstance(value, list) or not all(isinstance(item, str | int) for item in value):
        raise TelemetryError(f"{name} must be a string or a list of strings")
    return [str(item) for item in value]


def setups_from_table(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """client.toml's [telemetry] → the setup entries to install, by kind. Raises TelemetryError on a bad value."""
    unknown = [key for key in table if key not in TABLE_KEYS]
    if unknown:
        raise TelemetryError(f"[telemetry]: unknown key {unknown[0]!r} (known: {', '.join(TABLE_KEYS)})")
    setups: dict[str, dict[str, Any]] = {}
    config = {key: table[key] for key in CONFIG_KEYS if key in table}
    if config:
        if "unit_classes" in config:
            config["unit_classes"] = _strings(config["unit_classes"], "unit_classes")
        setups["current-config"] = config_entry(**config)
    if "pipe" in table:
        links = _table_list(table["pipe"], "pipe", PIPE_KEYS)
        setups[PIPE] = pipe_entry((str(link.get("link_id", "")), str(link.get("capacity", ""))) for link in links)
    if "baseline" in table:
        entries = _table_list(table["baseline"], "baseline", BASELINE_KEYS)
        setups["baseline"] = baseline_entry(
            baseline(
                int(item.get("id", number)),
                _strings(item.get("target_prefix", []), "target_prefix"),
                normal=_strings(item.get("normal", []), "normal"),
                peak=_strings(item.get("peak", []), "peak"),
            )
            for number, item in enumerate(entries, start=1)
        )
    vendor = table.get("vendor_id", 0)
    if isinstance(vendor, bool) or not isinstance(vendor, int) or not 0 <= vendor < 1 << 32:
        raise TelemetryError("vendor_id must be an IANA enterprise number (0-4294967295)")
    return setups


class TelemetryClient:
    """The telemetry state of one cuid: the setups it installed (durable), the reports accepted this run, and the
    server's latest answers (for `client telemetry show`)."""

    def __init__(self, cuid: str, store: ClientState, events: deque[Event]) -> None:
        self.cuid = cuid
        self.store = store
        self._events = events
        self.setups: dict[str, tuple[int, dict[str, Any]]] = store.load_telemetry_setups()
        """By kind: (tsid, entry) of what this client installed, re-sent at every (re)connection."""
        self.reports: dict[int, list[dict[str, Any]]] = {}
        """tmid → entries of the reports the server accepted since the client started."""
        self.server_setup: dict[str, Any] | None = None
        self.server_reports: dict[str, Any] | None = None
        self._refused: list[DotsRequest] = []
        """Setup PUTs refused with 4.00, waiting for the GET that tells whether the server holds newer tsids."""

    # ---------------------------------------------------------------- building requests
    def configure(self, desired: Mapping[str, dict[str, Any]]) -> None:
        """Install DESIRED (by kind; from client.toml): a kind whose entry changed gets a new tsid, so the newer
        setup replaces the older one at the server (§7); unchanged ones keep theirs (a re-send is then a 2.04)."""
        for kind, entry in desired.items():
            held = self.setups.get(kind)
            if held is not None and held[1] == entry:
                continue
            tsid = self.store.allocate_tsid()
            self.setups[kind] = (tsid, entry)
            self.store.save_telemetry_setup(kind, tsid, entry)

    def connected(self) -> list[DotsRequest]:
        """PUTs of every installed setup, oldest tsid first (a newer tsid below an installed one is refused)."""
        ordered = sorted(self.setups.values(), key=lambda held: held[0])
        return [setup_put_request(self.cuid, tsid, entry) for tsid, entry in ordered]

    def setup_get(self, tsid: int | None = None, *, content: str | None = None) -> DotsRequest:
        return setup_get_request(self.cuid, tsid, content=content)

    def setup_set(self, entry: dict[str, Any]) -> DotsRequest:
        """A new setup (a fresh tsid, durable before the request leaves): it replaces the one of its kind."""
        setup_kind(entry)
        return setup_put_request(self.cuid, self.store.allocate_tsid(), entry)

    def setup_delete(self, kind: str | None = None) -> DotsRequest:
        """DELETE the setup of KIND this client installed, or (None) every setup of the cuid (§7.4)."""
        if kind is None:
            return setup_delete_request(self.cuid)
        if kind not in KINDS:
            raise TelemetryError(f"setup kind must be one of {', '.join(KINDS)}")
        held = self.setups.get(kind)
        if held is None:
            raise TelemetryError(f"this client has installed no {kind}")
        return setup_delete_request(self.cuid, held[0], kind)

    def report(self, entries: list[dict[str, Any]], tmid: int | None = None) -> DotsRequest:
        """PUT /tm with a new tmid (or TMID: one of ours to update, or a higher one)."""
        report_put_request(self.cuid, 0, entries)  # refuse a bad report before a tmid is spent on it
        return report_put_request(self.cuid, self.store.allocate_tmid(tmid, held=set(self.reports)), entries)

    def reports_get(self, tmid: int | None = None, *, content: str | None = None) -> DotsRequest:
        return report_get_request(self.cuid, tmid, content=content)

    def reports_delete(self, tmid: int | None = None) -> DotsRequest:
        return report_delete_request(self.cuid, tmid)

    # ---------------------------------------------------------------- answers
    def handle_response(self, request: DotsRequest, response: DotsResponse) -> None:
        if request.kind is RequestKind.TM_SETUP_PUT and response.code == "4.00":
            # §7: a tsid below one the server holds is refused. A client whose state file was lost (or a copy of
            # its credentials elsewhere) would have every setup refused for good: look, and continue above.
            self._refused.append(request)
            if len(self._refused) == 1:
                self._events.append(SendRequest(setup_get_request(self.cuid, content="c"), "tsid-catch-up"))
        if not response.success:
            if request.kind is not RequestKind.TM_GET or response.code != "4.04":  # 4.04: no report, not a fault
                self._events.append(TelemetryRefused(request, response.code, response.diagnostic))
            else:
                self.server_reports = None
            return
        kind = request.kind
        if kind is RequestKind.TM_SETUP_PUT:
            assert request.tsid is not None and request.body is not None and request.setup_kind is not None
            (entry,) = request.body[TELEMETRY_SETUP]["telemetry"]
            self.setups[request.setup_kind] = (request.tsid, entry)
            self.store.save_telemetry_setup(request.setup_kind, request.tsid, entry)
            self._events.append(TelemetrySetupInstalled(request.setup_kind, request.tsid, response.code))
        elif kind is RequestKind.TM_SETUP_DELETE:
            gone = list(self.setups) if request.tsid is None else [request.setup_kind] if request.setup_kind else []
            for name in gone:
                if self.setups.pop(name, None) is not None:
                    self.store.delete_telemetry_setup(name)
            self._events.append(TelemetrySetupRemoved(request.tsid))
        elif kind is RequestKind.TM_PUT:
            assert request.tmid is not None and request.body is not None
            self.reports[request.tmid] = request.body[TELEMETRY]["pre-or-ongoing-mitigation"]
            self._events.append(TelemetryReported(request.tmid))
        elif kind is RequestKind.TM_DELETE:
            if request.tmid is None:
                self.reports.clear()
            else:
                self.reports.pop(request.tmid, None)
        elif kind is RequestKind.TM_SETUP_GET:
            self.server_setup = response.body
            self._catch_up(response.body or {})
            self._events.append(TelemetryReceived(response.body or {}))
        elif kind is RequestKind.TM_GET:
            self.server_reports = response.body
            self._events.append(TelemetryReceived(response.body or {}))

    def _catch_up(self, body: dict[str, Any]) -> None:
        """Re-send the setups refused for their tsid with tsids above the newest the server holds (once each: the
        new tsid is above it, so a second refusal has another cause)."""
        refused, self._refused = self._refused, []
        held = [entry.get("tsid") for entry in body.get(TELEMETRY_SETUP, {}).get("telemetry", [])]
        newest = max((tsid for tsid in held if isinstance(tsid, int)), default=None)
        for request in refused:
            if newest is None or request.tsid is None or request.tsid > newest or request.body is None:
                continue
            (entry,) = request.body[TELEMETRY_SETUP]["telemetry"]
            again = setup_put_request(self.cuid, self.store.allocate_tsid(above=newest), entry)
            self._events.append(SendRequest(again, "tsid-catch-up"))

    def recreate_events(self) -> list[SendRequest]:
        return [SendRequest(request, "recreate") for request in self.connected()]
