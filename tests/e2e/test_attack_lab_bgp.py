"""The BGP actuator behind a real `opendots server` process: `opendots client mitigate` makes the server's BGP
speaker announce FlowSpec and RTBH routes to a BIRD 2 peer; `withdraw` removes them; each speaker is tried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab.processes import ProcessStack, wait_for
from opendots.mitigate.bgp.birdlab import (
    BIRD_AS,
    BIRD_V4,
    BIRD_V6,
    DISCARD_V4,
    DISCARD_V6,
    SPEAKER_AS,
    SPEAKER_V4,
    SPEAKER_V6,
    BirdLab,
    missing_prerequisites,
)
from opendots.mitigate.bgp.speakers import SPEAKERS, speaker_unavailable

pytestmark = pytest.mark.lab
TARGET = "203.0.113.9/32"
TARGET_V6 = "2001:db8:b::9/128"


@pytest.fixture(scope="module")
def bird() -> Iterator[BirdLab]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    with BirdLab() as lab:
        yield lab


def bgp_mitigator(lab: BirdLab, speaker: str) -> dict[str, object]:
    """A [[mitigators]] table of type bgp, as an operator would write it in server.toml."""
    return {
        "type": "bgp",
        "speaker": speaker,
        "mode": "both",
        "local_as": SPEAKER_AS,
        "router_id": str(SPEAKER_V4),
        "netns": lab.speaker_ns,
        "discard_next_hop_v4": str(DISCARD_V4),
        "discard_next_hop_v6": str(DISCARD_V6),
        "peers": [
            {"address": str(BIRD_V4), "remote_as": BIRD_AS, "local_address": str(SPEAKER_V4)},
            {"address": str(BIRD_V6), "remote_as": BIRD_AS, "local_address": str(SPEAKER_V6)},
        ],
    }


def bgp_routes(lab: BirdLab) -> dict[str, str]:
    """BGP-learned routes at BIRD, all four tables (the static discard routes are BIRD's own)."""
    routes = {}
    for table in ("master4", "master6", "flowtab4", "flowtab6"):
        routes.update({net: text for net, text in lab.routes(table).items() if "BGP univ" in text})
    return routes


@pytest.mark.parametrize("speaker", SPEAKERS)
def test_mitigate_announces_flowspec_and_rtbh_to_bird_and_withdraw_removes_them(
    bird: BirdLab, speaker: str, tmp_path: Path
):
    reason = speaker_unavailable(speaker)
    if reason:
        pytest.skip(reason)
    with ProcessStack(tmp_path / "stack", [bgp_mitigator(bird, speaker)]) as stack:
        stack.start_server()
        try:
            # 60 s, not 20: a fresh install's first run (CI) once took longer than 20 s for exabgp, whose first
            # start in a new venv also compiles its bytecode; BIRD retries every second, so a session that can come
            # up does so well within this.
            wait_for(bird.established, 60, f"{speaker} to establish its BGP sessions with BIRD", interval=0.1)
            args = ["--target-prefix", TARGET, "--target-prefix", TARGET_V6, "--protocol", "udp"]
            created = stack.cli("client", "mitigate", *args, "--lifetime", "600", oneshot=True)
            assert created.returncode == 0 and ": 2.01 " in created.stdout, created.stderr
            mid = created.stdout.split()[1].rstrip(":")

            def announced() -> dict[str, str] | None:
                routes = bgp_routes(bird)
                flows = [net for net in routes if net.startswith("flow")]
                return routes if {TARGET, TARGET_V6} <= set(routes) and len(flows) == 2 else None

            routes = wait_for(announced, 15, "the RTBH and FlowSpec routes at BIRD", interval=0.05)
            assert "blackhole" in routes[TARGET] and "(65535,666)" in routes[TARGET]
            flow4 = next(net for net in routes if net.startswith("flow4"))
            flow6 = next(net for net in routes if net.startswith("flow6"))
            assert f"dst {TARGET}" in flow4 and "proto 17" in flow4
            assert f"dst {TARGET_V6}" in flow6 and "next header 17" in flow6

            withdrawn = stack.cli("client", "withdraw", "--mid", mid, oneshot=True)
            assert withdrawn.returncode == 0, withdrawn.stderr
            wait_for(lambda: not bgp_routes(bird), 15, "every route to be withdrawn", interval=0.05)
        finally:
            stack.stop_server()
        # The speaker stopped with the server: its sessions go down, and nothing reappears.
        wait_for(lambda: not bird.established(), 15, "the BGP sessions to close", interval=0.1)
        assert not bgp_routes(bird)
