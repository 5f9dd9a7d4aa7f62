"""BGP actuator: RTBH (RFC 7999) and FlowSpec (RFC 8955/8956) announced through a real BGP speaker."""

from __future__ import annotations

from opendots.mitigate.bgp.exabgp import ExaBgpSpeaker
from opendots.mitigate.bgp.gobgp import GoBgpSpeaker
from opendots.mitigate.bgp.mitigator import BgpMitigator
from opendots.mitigate.bgp.routes import FlowspecRoute, RoutePolicy, RtbhRoute, routes_for_scope
from opendots.mitigate.bgp.speaker import BgpSpeaker, PeerConfig, SpeakerConfig, SpeakerError
from opendots.mitigate.bgp.speakers import DEFAULT_SPEAKER, SPEAKERS, make_speaker, speaker_unavailable

__all__ = [
    "DEFAULT_SPEAKER",
    "SPEAKERS",
    "BgpMitigator",
    "BgpSpeaker",
    "ExaBgpSpeaker",
    "FlowspecRoute",
    "GoBgpSpeaker",
    "PeerConfig",
    "RoutePolicy",
    "RtbhRoute",
    "SpeakerConfig",
    "SpeakerError",
    "make_speaker",
    "routes_for_scope",
    "speaker_unavailable",
]
