"""BGP actuator: RTBH (RFC 7999) and FlowSpec (RFC 8955/8956) announced through a real BGP speaker.

Usage (the server owns one mitigator for its lifetime):

    settings = BgpSettings.from_mapping(server_toml["mitigator"]["bgp"])   # see settings.py for the keys
    mitigator = settings.build()
    await mitigator.start()                      # starts ExaBGP (default) or GoBGP
    await mitigator.restore(active_scopes)       # after any start: speakers keep no routes across restarts
    await mitigator.apply(scope) / update(scope) / withdraw(key)   # MitigatorError if it cannot be enforced
    await mitigator.ensure_running(load_active_scopes)   # periodically: restarts a dead speaker, re-announces
    await mitigator.health()                     # speaker running and every BGP session established
    await mitigator.stop()

Modules: routes (sans-I/O scope -> routes and the shared route table), speaker (BgpSpeaker interface, configs,
daemon process), exabgp / exabgp_relay / gobgp (the two speakers), speakers (choice, measured), mitigator,
settings, birdlab (BIRD 2 peer in namespaces, for tests and bench/bgp.py only).
"""

from __future__ import annotations

from opendots.mitigate.bgp.exabgp import ExaBgpSpeaker
from opendots.mitigate.bgp.gobgp import GoBgpSpeaker
from opendots.mitigate.bgp.mitigator import BgpMitigator
from opendots.mitigate.bgp.routes import FlowspecRoute, RoutePolicy, RtbhRoute, routes_for_scope
from opendots.mitigate.bgp.settings import BgpSettings, BgpSettingsError
from opendots.mitigate.bgp.speaker import BgpSpeaker, PeerConfig, SpeakerConfig, SpeakerError
from opendots.mitigate.bgp.speakers import DEFAULT_SPEAKER, SPEAKERS, make_speaker, speaker_unavailable

__all__ = [
    "DEFAULT_SPEAKER",
    "SPEAKERS",
    "BgpMitigator",
    "BgpSettings",
    "BgpSettingsError",
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
