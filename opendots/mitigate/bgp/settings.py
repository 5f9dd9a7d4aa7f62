"""BGP actuator settings from a plain mapping (a `[mitigator.bgp]` TOML table), with errors that name the key.

Example:
    [mitigator.bgp]
    speaker = "exabgp"            # or "gobgp"
    mode = "both"                 # "rtbh", "flowspec" or "both"
    local_as = 64496
    router_id = "198.51.100.1"
    listen_port = 179             # omit or set to -1 to only connect out
    netns = "edge"                # optional: run the speaker in this network namespace (`ip netns exec`)
    discard_next_hop_v4 = "192.0.2.1"
    discard_next_hop_v6 = "100::1"   # RFC 6666 discard-only block
    communities = ["64496:9999"]  # sent with 65535:666 on RTBH routes
    flowspec_rate_limit = 0       # bytes per second; 0 = discard
    [[mitigator.bgp.peers]]
    address = "198.51.100.2"
    remote_as = 64497
    local_address = "198.51.100.1"
    families = ["ipv4-unicast", "ipv4-flowspec"]   # optional
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendots.errors import ConfigError
from opendots.mitigate.bgp.mitigator import BgpMitigator
from opendots.mitigate.bgp.routes import DEFAULT_DISCARD_V4, DEFAULT_DISCARD_V6, RoutePolicy
from opendots.mitigate.bgp.speaker import PeerConfig, SpeakerConfig
from opendots.mitigate.bgp.speakers import DEFAULT_SPEAKER, SPEAKERS, make_speaker

_TOP_KEYS = {
    "speaker",
    "mode",
    "local_as",
    "router_id",
    "listen_port",
    "work_dir",
    "netns",
    "discard_next_hop_v4",
    "discard_next_hop_v6",
    "communities",
    "flowspec_rate_limit",
    "rtbh_min_prefix_length_v4",
    "rtbh_min_prefix_length_v6",
    "max_routes_per_mitigation",
    "peers",
}
_PEER_KEYS = {"address", "remote_as", "local_address", "families", "multihop_ttl"}


class BgpSettingsError(ConfigError):
    """The BGP settings are wrong; the message names the offending key."""


@dataclass(frozen=True)
class BgpSettings:
    speaker: str
    speaker_config: SpeakerConfig
    policy: RoutePolicy

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> BgpSettings:
        unknown = set(mapping) - _TOP_KEYS
        if unknown:
            raise BgpSettingsError(f"unknown BGP setting(s) {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
        speaker = mapping.get("speaker", DEFAULT_SPEAKER)
        if speaker not in SPEAKERS:
            raise BgpSettingsError(f"speaker: {speaker!r} is not one of {list(SPEAKERS)}")
        try:
            peers = tuple(_peer(index, peer) for index, peer in enumerate(_required(mapping, "peers")))
            listen_port = mapping.get("listen_port", 179)
            work_dir = mapping.get("work_dir")
            speaker_config = SpeakerConfig(
                local_as=int(_required(mapping, "local_as")),
                router_id=_address("router_id", _required(mapping, "router_id"), 4),
                peers=peers,
                listen_port=None if listen_port in (None, -1) else int(listen_port),
                work_dir=Path(work_dir) if work_dir else None,
                command_prefix=_netns_prefix(mapping.get("netns")),
            )
            policy = RoutePolicy(
                mode=mapping.get("mode", "flowspec"),
                discard_next_hop_v4=_address(
                    "discard_next_hop_v4", mapping.get("discard_next_hop_v4", DEFAULT_DISCARD_V4), 4
                ),
                discard_next_hop_v6=_address(
                    "discard_next_hop_v6", mapping.get("discard_next_hop_v6", DEFAULT_DISCARD_V6), 6
                ),
                extra_communities=tuple(mapping.get("communities", ())),
                flowspec_rate_limit_bytes_per_second=float(mapping.get("flowspec_rate_limit", 0)),
                rtbh_min_prefix_length_v4=int(mapping.get("rtbh_min_prefix_length_v4", 32)),
                rtbh_min_prefix_length_v6=int(mapping.get("rtbh_min_prefix_length_v6", 128)),
                max_routes_per_mitigation=int(mapping.get("max_routes_per_mitigation", 256)),
            )
        except BgpSettingsError:
            raise
        except (ValueError, TypeError) as error:
            raise BgpSettingsError(f"BGP settings: {error}") from error
        return cls(speaker, speaker_config, policy)

    def build(self) -> BgpMitigator:
        """A mitigator with its (not yet started) speaker; call `await mitigator.start()`."""
        return BgpMitigator(make_speaker(self.speaker, self.speaker_config), self.policy)


def _address(key: str, value: Any, version: int | None = None) -> Any:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or (version is not None and address.version != version):
        kind = f"an IPv{version}" if version else "an IP"
        raise BgpSettingsError(f"{key}: {value!r} is not {kind} address")
    return address


def _netns_prefix(netns: Any) -> tuple[str, ...]:
    if netns is None:
        return ()
    if not isinstance(netns, str) or not netns or "/" in netns or netns.startswith("."):
        raise BgpSettingsError(f"netns: {netns!r} is not a network namespace name")
    return ("ip", "netns", "exec", netns)


def _required(mapping: Mapping[str, Any], key: str) -> Any:
    if key not in mapping:
        raise BgpSettingsError(f"BGP setting {key!r} is required")
    return mapping[key]


def _peer(index: int, peer: Mapping[str, Any]) -> PeerConfig:
    unknown = set(peer) - _PEER_KEYS
    if unknown:
        raise BgpSettingsError(f"peers[{index}]: unknown key(s) {sorted(unknown)}; known: {sorted(_PEER_KEYS)}")
    try:
        local = peer.get("local_address")
        ttl = peer.get("multihop_ttl")
        return PeerConfig(
            address=_address("address", _required(peer, "address")),
            remote_as=int(_required(peer, "remote_as")),
            local_address=_address("local_address", local) if local else None,
            families=tuple(peer.get("families", ())),
            multihop_ttl=int(ttl) if ttl is not None else None,
        )
    except (ValueError, TypeError) as error:
        raise BgpSettingsError(f"peers[{index}]: {error}") from error
