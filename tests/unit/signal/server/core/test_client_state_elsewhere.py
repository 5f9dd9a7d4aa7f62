"""Several nodes on one database: a session configuration (RFC 9132 §4.5) or a telemetry setup (RFC 9244 §7) another
node stored is fed into this node's core (`SignalServer.client_state_elsewhere`), which then decides on it as if the
client had set it here. Two harnesses stand for two nodes; B is fed the rows A stored, as the shells do after a NOTIFY
(PostgreSQL) or a read of the workers' change log (SQLite)."""

from __future__ import annotations

import pytest

from opendots.model import encode_telemetry
from opendots.signal.server.core import HeartbeatDue, SessionConfigChanged
from opendots.signal.server.core.events import TelemetrySetupChanged
from tests.helpers.signal_harness import ALPHA_CUID, CONFIG, make_harness

HB = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}
SETUP = "ietf-dots-telemetry:telemetry-setup"


@pytest.fixture
def nodes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return make_harness(tmp_path / "a"), make_harness(tmp_path / "b")


def config(**values):
    parameters = {k.replace("_", "-"): {"current-value": v} for k, v in values.items()}
    return {CONFIG: {"idle-config": parameters, "mitigating-config": parameters}}


def feed(source, target, client="alpha"):
    """What SOURCE's store holds for CLIENT, fed to TARGET's core."""
    state = source.store.load()
    configs = [c for c in state.session_configs if c.client == client]
    setups = [s for s in state.telemetry_setups if s.client == client]
    return target.server.client_state_elsewhere(client, configs[0] if configs else None, setups, target.now)


def test_a_session_configuration_set_elsewhere_is_answered_here_rfc9132_4_5(nodes):
    a, b = nodes
    assert (
        a.request("PUT", ("config", "sid=3"), body=config(heartbeat_interval=60, missing_hb_allowed=5)).code == "2.01"
    )
    assert feed(a, b) == [SessionConfigChanged("alpha")]  # B's observers of /config hear of it
    body = b.request("GET", ("config",)).body[CONFIG]
    assert body["idle-config"]["heartbeat-interval"]["current-value"] == 60
    assert body["mitigating-config"]["missing-hb-allowed"]["current-value"] == 5
    assert b.request("GET", ("config", "sid=3")).code == "2.05"
    assert feed(a, b) == []  # read twice (an echo): nothing more
    # A higher 'sid' must follow it here too (§4.5.2).
    assert b.request("PUT", ("config", "sid=2"), body=config(heartbeat_interval=90)).code == "4.00"
    assert a.request("DELETE", ("config",)).code == "2.02"
    assert feed(a, b) == [SessionConfigChanged("alpha")]
    assert b.request("GET", ("config",)).body[CONFIG]["idle-config"]["heartbeat-interval"]["current-value"] == 30


def test_a_heartbeat_interval_set_elsewhere_governs_the_heartbeats_sent_here_rfc9132_4_7(nodes):
    a, b = nodes
    assert b.request("PUT", ("hb",), body=HB).code == "2.04"  # the client's session is on B
    assert a.request("PUT", ("config", "sid=1"), body=config(heartbeat_interval=15)).code == "2.01"
    feed(a, b)
    assert b.advance(15) == [HeartbeatDue("alpha", True)]  # not after the default 30 s


def test_telemetry_setups_stored_elsewhere_replace_what_this_node_held_rfc9244_7(nodes):
    a, b = nodes
    body = {SETUP: {"telemetry": [{"current-config": {"measurement-interval": "5-minutes"}}]}}
    path = ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=7")
    assert a.request("PUT", path, payload=encode_telemetry(body)).code == "2.01"
    assert feed(a, b) == [TelemetrySetupChanged("alpha", ALPHA_CUID)]
    assert b.server.telemetry_setups.config_of("alpha", ALPHA_CUID)["measurement-interval"] == "5-minutes"
    got = b.request("GET", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=7"))
    assert got.code == "2.05"
    assert (
        b.request("PUT", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=6"), payload=encode_telemetry(body)).code == "4.00"
    )  # tsid rises
    assert feed(a, b) == []
    assert a.request("DELETE", ("tm-setup", f"cuid={ALPHA_CUID}")).code == "2.02"
    assert feed(a, b) == [TelemetrySetupChanged("alpha", ALPHA_CUID)]
    assert b.request("GET", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=7")).code == "4.04"
    assert b.server.telemetry_setups.config_of("alpha", ALPHA_CUID)["measurement-interval"] != "5-minutes"
