"""BGP settings from a TOML-like mapping."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.mitigate.bgp.exabgp import ExaBgpSpeaker
from opendots.mitigate.bgp.gobgp import GoBgpSpeaker
from opendots.mitigate.bgp.settings import BgpSettings, BgpSettingsError

MINIMAL = {
    "local_as": 64496,
    "router_id": "198.51.100.1",
    "peers": [{"address": "198.51.100.2", "remote_as": 64497, "local_address": "198.51.100.1"}],
}


def test_minimal_settings_use_the_defaults():
    settings = BgpSettings.from_mapping(MINIMAL)
    assert settings.speaker == "exabgp"
    assert settings.policy.mode == "flowspec"
    assert settings.speaker_config.listen_port == 179
    mitigator = settings.build()
    assert isinstance(mitigator.speaker, ExaBgpSpeaker)
    assert mitigator.name == "bgp-flowspec-exabgp"


def test_full_settings():
    settings = BgpSettings.from_mapping(
        {
            **MINIMAL,
            "speaker": "gobgp",
            "mode": "both",
            "listen_port": -1,
            "discard_next_hop_v4": "192.0.2.66",
            "communities": ["64496:9999"],
            "flowspec_rate_limit": 1250,
            "netns": "edge",
        }
    )
    assert isinstance(settings.build().speaker, GoBgpSpeaker)
    assert settings.speaker_config.listen_port is None
    assert settings.policy.discard_next_hop_v4 == ipaddress.IPv4Address("192.0.2.66")
    assert settings.policy.extra_communities == ("64496:9999",)
    assert settings.policy.flowspec_rate_limit_bytes_per_second == 1250
    assert settings.speaker_config.command_prefix == ("ip", "netns", "exec", "edge")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"speaker": "quagga"}, "speaker"),
        ({"mode": "drop"}, "mode"),
        ({"colour": "red"}, "unknown BGP setting"),
        ({"router_id": "2001:db8::1"}, "IPv4"),
        ({"peers": [{"address": "198.51.100.2"}]}, r"peers\[0\].*remote_as"),
        ({"peers": [{"address": "198.51.100.2", "remote_as": 1, "password": "x"}]}, r"peers\[0\]: unknown key"),
        ({"peers": []}, "at least one peer"),
        ({"communities": ["blackhole"]}, "community"),
        ({"netns": "../etc"}, "netns"),
    ],
)
def test_bad_settings_name_the_problem(change: dict, message: str):
    with pytest.raises(BgpSettingsError, match=message):
        BgpSettings.from_mapping({**MINIMAL, **change})


def test_missing_required_key():
    with pytest.raises(BgpSettingsError, match="local_as"):
        BgpSettings.from_mapping({key: value for key, value in MINIMAL.items() if key != "local_as"})
