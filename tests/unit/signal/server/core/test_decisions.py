"""The core returns its writes: a Decision is stored first, then applied; a failed write changes nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from opendots.signal.server.core import PeerLost, Request, SessionConfig, Status
from opendots.signal.server.core.events import HeartbeatDue, MitigationActivated
from opendots.signal.server.core.sessionconfig import ParameterSet
from tests.helpers import REPOSITORY
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    SCOPE,
    Harness,
    make_harness,
    mitigate_path,
    scope_body,
)

HB = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}
# Heartbeats every 15 s, lost after 3 missed: 45 s of silence.
FAST = SessionConfig(
    idle=ParameterSet(heartbeat_interval=15, missing_hb_allowed=3),
    mitigating=ParameterSet(heartbeat_interval=15, missing_hb_allowed=3),
)
LOSS = 45


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, session_defaults=FAST)


def test_a_decision_changes_nothing_until_it_is_applied(harness: Harness):
    decision = harness.server.handle(
        Request("PUT", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, body=scope_body(target_prefix=["192.0.2.0/28"])),
        harness.now,
    )
    assert decision.response is not None and decision.response.code == "2.01"
    assert [record.mid for record in decision.changes.put_mitigations] == [1]
    assert harness.server.mitigations() == []  # decided, not yet stored: memory is untouched
    with pytest.raises(RuntimeError):  # deciding again now would use stale state
        harness.server.handle(Request("GET", mitigate_path(ALPHA_CUID), ALPHA_CUID), harness.now)
    harness.settle(decision)
    assert [m.record.mid for m in harness.server.mitigations()] == [1]
    assert harness.dump()["signal_mitigations"][0][:2] == (ALPHA_CUID, 1)


def test_a_refused_write_leaves_the_core_as_it_was_and_free_to_decide(harness: Harness):
    decision = harness.server.handle(
        Request("PUT", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, body=scope_body(target_prefix=["192.0.2.0/28"])),
        harness.now,
    )
    response = harness.server.write_failed(decision, harness.now)
    assert response is not None and response.code == "5.03"
    assert harness.server.mitigations() == []
    assert harness.get(1).code == "4.04"


def test_sessions_lost_while_the_store_fails_are_activated_once_it_works_again(harness: Harness):
    """§4.4.1.3: the preconfigured requests of two clients whose sessions are lost are activated, each client's in
    its own stored step; while the store refuses, nothing is activated, and heartbeats to others still go out."""
    pre = {"trigger_mitigation": False, "lifetime": -1}
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"], **pre)).code == "2.01"
    assert harness.put(1, scope_body(target_prefix=["198.51.100.0/28"], **pre), cuid=BRAVO_CUID, peer=BRAVO).code
    connection = harness.store.database.connection
    connection.execute("PRAGMA query_only = ON")
    try:
        events = harness.advance(LOSS + 1)
    finally:
        connection.execute("PRAGMA query_only = OFF")
    assert not [e for e in events if isinstance(e, MitigationActivated | PeerLost)]
    assert {m.status for m in harness.server.mitigations()} == {Status.ATTACK_MITIGATION_SIGNAL_LOSS}
    assert any(isinstance(e, HeartbeatDue) for e in events)  # stored nothing, so not held back
    events = harness.advance(2)
    assert sorted(e.client for e in events if isinstance(e, PeerLost)) == ["alpha", "bravo"]
    assert sorted(e.client for e in events if isinstance(e, MitigationActivated)) == ["alpha", "bravo"]
    assert {row[6] for row in harness.dump()["signal_mitigations"]} == {int(Status.ATTACK_MITIGATION_IN_PROGRESS)}


def test_notifications_rendered_by_the_server_are_not_the_clients_traffic(harness: Harness):
    """§4.7: only the peer's own messages keep its session alive. Re-rendering an observed GET for a notification
    (counters changing during an attack) must not hide that the client went silent."""
    pre = scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False, lifetime=-1)
    assert harness.put(2, pre).code == "2.01"
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=-1)).code == "2.01"
    lost: list = []
    for _ in range(LOSS // 5 + 2):
        lost += [e for e in harness.advance(5) if isinstance(e, PeerLost)]
        rendered = harness.server.render_mitigations("alpha", ALPHA_CUID, None, (), harness.now)
        assert rendered.code == "2.05"
    assert lost == [PeerLost("alpha")]
    statuses = {e["mid"]: e["status"] for e in harness.get().body[SCOPE]["scope"]}
    assert statuses[2] == "attack-mitigation-in-progress"  # the preconfigured request took over


def test_a_heartbeat_still_keeps_the_session_alive(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=-1)).code == "2.01"
    lost: list = []
    for _ in range(LOSS // 5 + 2):
        lost += [e for e in harness.advance(5) if isinstance(e, PeerLost)]
        assert harness.request("PUT", ("hb",), peer=ALPHA, body=HB).code == "2.04"
    assert lost == []


FORBIDDEN = {"sqlite3", "socket", "ssl", "asyncio", "selectors", "aiocoap", "aiohttp", "OpenSSL", "psycopg", "asyncpg"}
PACKAGE = REPOSITORY / "opendots"


def _imports(path: Path) -> set[str]:
    """What importing PATH imports: its module-level import statements (a function's own imports run only when it
    is called; `if TYPE_CHECKING:` blocks never run)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "opendots":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@pytest.mark.parametrize(
    "root",
    sorted(
        [
            *PACKAGE.glob("signal/server/core/*.py"),
            *PACKAGE.glob("signal/client/core/*.py"),
            *PACKAGE.glob("data/core/*.py"),
            *PACKAGE.glob("transport/qblock/*.py"),
        ]
    ),
    ids=str,
)
def test_the_sans_io_cores_reach_no_database_socket_or_event_loop_module(root: Path):
    """Followed through every opendots module the core imports (third-party libraries such as yangson are not
    followed: they are not ours to arrange)."""
    seen: set[Path] = set()
    todo = [root]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(PACKAGE)} imports {name}"
            found = _module_file(name)
            if found is not None:
                todo.append(found)
    assert ALPHA.name  # the fixtures module is importable without sockets too
