"""Choosing a speaker implementation by name."""

from __future__ import annotations

import shutil

from opendots.mitigate.bgp.exabgp import ExaBgpSpeaker
from opendots.mitigate.bgp.gobgp import GoBgpSpeaker
from opendots.mitigate.bgp.speaker import BgpSpeaker, SpeakerConfig

DEFAULT_SPEAKER = "gobgp"
SPEAKERS = ("gobgp", "exabgp")
_BINARIES = {"gobgp": (("gobgpd", "gobgp"), "gobgpd"), "exabgp": (("exabgp",), "exabgp")}


def speaker_unavailable(kind: str) -> str | None:
    """Why speaker KIND cannot run on this machine, or None."""
    if kind not in _BINARIES:
        return f"unknown BGP speaker {kind!r}; known: {', '.join(SPEAKERS)}"
    binaries, package = _BINARIES[kind]
    for binary in binaries:
        if shutil.which(binary) is None:
            return f"{binary} is not installed (apt-get install {package})"
    return None


def make_speaker(kind: str, config: SpeakerConfig) -> BgpSpeaker:
    if kind == "gobgp":
        return GoBgpSpeaker(config)
    if kind == "exabgp":
        return ExaBgpSpeaker(config)
    raise ValueError(f"unknown BGP speaker {kind!r}; known: {', '.join(SPEAKERS)}")
