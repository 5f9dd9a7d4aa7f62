"""Shared harness for the signal-core tests: two clients, a real SQLite store, a fake clock.

(Named test_* so it sits with the files it serves; it defines helpers, plus a test of the test data.)
Each test module declares its own `harness` fixture with make_harness().
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendots.config import ClientAuthorization
from opendots.model import encode_signal
from opendots.signal.server.core import ParameterSet, Request, Response, ServerSettings, SessionConfig, SignalServer
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import Event
from opendots.signal.server.shell.durable import settle
from opendots.store.records import SignalStore
from opendots.store.signal import SqliteSignalStore
from tests.helpers import FIXTURES

DATA = FIXTURES / "signal"
SCOPE = "ietf-dots-signal-channel:mitigation-scope"
CONFIG = "ietf-dots-signal-channel:signal-config"
T0 = 1_507_818_000.0  # around the dates of RFC 9132 Figure 14

# Heartbeats off: for tests about mitigation timers only.
NO_HEARTBEAT = SessionConfig(mitigating=ParameterSet(heartbeat_interval=0), idle=ParameterSet(heartbeat_interval=0))

ALPHA_CUID = "dz6pHjaADkaFTbjr0JGBpw"  # the RFC's example cuid
BRAVO_CUID = "f30d281ce6b64fc5a0b91e"  # the RFC's "new cuid" example (Figure 11)

ALPHA = ClientAuthorization(
    name="alpha",
    cuid=ALPHA_CUID,
    prefixes=(ipaddress.ip_network("2001:db8:6401::/48"), ipaddress.ip_network("192.0.2.0/24")),
    fqdns=("www.example.com", "*.alpha.example"),
    uris=("https://portal.example.net/login",),
)
BRAVO = ClientAuthorization(
    name="bravo",
    cuid=BRAVO_CUID,
    prefixes=(ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("192.0.2.0/24")),
    fqdns=("*.bravo.example",),
)


def figure(name: str) -> Any:
    """A deep copy of an RFC 9132 figure body from tests/fixtures/signal."""
    matches = sorted(DATA.glob(f"{name}*"))
    assert len(matches) == 1, f"expected one data file for {name}, found {matches}"
    return copy.deepcopy(json.loads(matches[0].read_text()))


def scope_body(**entry: Any) -> dict[str, Any]:
    entry = {key.replace("_", "-"): value for key, value in entry.items()}
    entry.setdefault("lifetime", 3600)
    return {SCOPE: {"scope": [entry]}}


def mitigate_path(cuid: str = ALPHA_CUID, mid: int | None = None, cdid: str | None = None) -> tuple[str, ...]:
    path = ["mitigate"]
    if cdid:
        path.append(f"cdid={cdid}")
    path.append(f"cuid={cuid}")
    if mid is not None:
        path.append(f"mid={mid}")
    return tuple(path)


@dataclass
class Harness:
    """Drives one SignalServer on a real SQLite file with a clock the test moves."""

    path: Path
    settings: ServerSettings
    now: float = T0
    opener: Callable[[], SignalStore] | None = None
    """Opens the store (the same database each time); None: SQLite at PATH."""

    def __post_init__(self) -> None:
        self.store = self.opener() if self.opener is not None else SqliteSignalStore.open(self.path)
        self.server = SignalServer(self.settings, self.store.load(), self.now)
        self.events: list[Event] = []

    def settle(self, decision: Decision) -> tuple[Response | None, list[Event]]:
        """As the shell does: store the decision, then let the core apply it."""
        return settle(self.server, self.store, decision, self.now)

    def request(
        self, method: str, path: tuple[str, ...], peer: ClientAuthorization | str | None = ALPHA, **kw
    ) -> Response:
        peer_cuid = peer.cuid if isinstance(peer, ClientAuthorization) else peer
        if isinstance(kw.get("body"), dict):
            # As the CoAP shell does: the core gets the CBOR bytes and decodes them itself. Not validated here, so
            # bodies the data model refuses reach the core's decoder.
            kw["payload"] = encode_signal(kw.pop("body"), validate=False)
        response, events = self.settle(self.server.handle(Request(method, path, peer=peer_cuid, **kw), self.now))
        self.events = events
        assert response is not None
        return response

    def put(self, mid: int, body: Any, cuid: str = ALPHA_CUID, peer: ClientAuthorization = ALPHA, **kw) -> Response:
        return self.request("PUT", mitigate_path(cuid, mid), peer, body=body, **kw)

    def get(self, mid: int | None = None, cuid: str = ALPHA_CUID, peer: ClientAuthorization = ALPHA, **kw) -> Response:
        return self.request("GET", mitigate_path(cuid, mid), peer, **kw)

    def delete(self, mid: int | None, cuid: str = ALPHA_CUID, peer: ClientAuthorization = ALPHA) -> Response:
        return self.request("DELETE", mitigate_path(cuid, mid), peer)

    def advance(self, seconds: float) -> list[Event]:
        """Move the clock, firing every timer that falls due on the way (in order)."""
        target = self.now + seconds
        fired: list[Event] = []
        while (due := self.server.next_timer()) is not None and due <= target:
            self.now = max(self.now, due)
            fired += self.settle(self.server.handle_timer(self.now))[1]
        self.now = target
        fired += self.settle(self.server.handle_timer(self.now))[1]
        return fired

    def settle_request(self, request: Request, now: float) -> tuple[Response, list[Event]]:
        response, events = settle(self.server, self.store, self.server.handle(request, now), now)
        assert response is not None
        return response, events

    def report_status(self, key: str, status: Any) -> list[Event]:
        return self.settle(self.server.report_status(key, status, self.now))[1]

    def report_counters(self, key: str, counters: Any) -> list[Event]:
        return self.settle(self.server.report_counters(key, counters, self.now))[1]

    def restart(self) -> None:
        self.store.close()
        self.__post_init__()

    def dump(self) -> dict[str, Any]:
        return self.store.dump()


class SettledServer:
    """A SignalServer whose decisions are stored and applied at once, as the shell does: for tests that build their
    own core. `handle` answers (response, events); other attributes are the core's."""

    def __init__(self, settings: ServerSettings, store: SignalStore, now: float) -> None:
        self.core = SignalServer(settings, store.load(), now)
        self.store = store

    def handle(self, request: Request, now: float) -> tuple[Response, list[Event]]:
        decision = self.core.handle(request, now)
        response, events = settle(self.core, self.store, decision, now, self.core.settings.acl_control)  # type: ignore[arg-type]
        assert response is not None
        return response, events

    def handle_timer(self, now: float) -> list[Event]:
        return settle(self.core, self.store, self.core.handle_timer(now), now)[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)


def make_harness(tmp_path: Path, opener: Callable[[], SignalStore] | None = None, **settings: Any) -> Harness:
    """OPENER: the store to run on (the `open_signal_store` fixture: SQLite in tests/unit, PostgreSQL in
    tests/integration/store); None: SQLite in TMP_PATH."""
    return Harness(tmp_path / "signal.db", ServerSettings(clients=[ALPHA, BRAVO], **settings), opener=opener)
