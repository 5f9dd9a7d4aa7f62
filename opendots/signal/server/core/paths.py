"""Uri-Path forms of RFC 9132 §4.2, §4.4.1, §4.5.2 and §4.7, after the ".well-known/dots" prefix.

mitigate/[cdid=X/]cuid=X[/mid=N]     config[/sid=N]     hb     tm-setup/[cdid=X/]cuid=X[/tsid=N] (RFC 9244 §7)
tm/[cdid=X/]cuid=X[/tmid=N] (RFC 9244 §8)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from opendots.domain.defaults import UINT32_MAX
from opendots.signal.server.core.messages import reject

_UNSIGNED = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class MitigatePath:
    cuid: str
    mid: int | None = None
    cdid: str | None = None


@dataclass(frozen=True)
class ConfigPath:
    sid: int | None = None


@dataclass(frozen=True)
class HeartbeatPath:
    pass


@dataclass(frozen=True)
class TelemetrySetupPath:
    cuid: str
    tsid: int | None = None
    cdid: str | None = None


@dataclass(frozen=True)
class TelemetryPath:
    cuid: str
    tmid: int | None = None
    cdid: str | None = None


ResourcePath = MitigatePath | ConfigPath | HeartbeatPath | TelemetrySetupPath | TelemetryPath


@functools.lru_cache(maxsize=512)
def parse_path(segments: tuple[str, ...]) -> ResourcePath:
    """Parse the segments or raise Rejected (4.04 unknown resource, 4.00 malformed parameters). Each client repeats
    a few paths all the time (its hb, its mids): the (frozen) results of the latest are kept; refusals are not."""
    if not segments:
        raise reject("4.04", "no DOTS resource named (expected mitigate, config or hb)")
    resource, rest = segments[0], list(segments[1:])
    if resource == "mitigate":
        return _mitigate(rest)
    if resource == "config":
        return _config(rest)
    if resource == "hb":
        if rest:
            raise reject("4.00", "the heartbeat resource takes no 'cuid', 'cdid', 'mid' or other Uri-Path")
        return HeartbeatPath()
    if resource == "tm-setup":
        return _tm_setup(rest)
    if resource == "tm":
        return _tm(rest)
    raise reject("4.04", f"unknown DOTS resource {resource!r}")


def _mitigate(rest: list[str]) -> MitigatePath:
    # Order matters (§4.4.1.1): cdid, then cuid, then mid.
    cuid, mid, cdid = _numbered(rest, "mid")
    return MitigatePath(cuid=cuid, mid=mid, cdid=cdid)


def _tm_setup(rest: list[str]) -> TelemetrySetupPath:
    # RFC 9244 §7.1.2: 'tsid' MUST appear after 'cuid'; 'cdid' (a gateway, §5.2) comes first as in RFC 9132.
    cuid, tsid, cdid = _numbered(rest, "tsid")
    return TelemetrySetupPath(cuid=cuid, tsid=tsid, cdid=cdid)


def _tm(rest: list[str]) -> TelemetryPath:
    # RFC 9244 §8.2: 'tmid' MUST appear after 'cuid'.
    cuid, tmid, cdid = _numbered(rest, "tmid")
    return TelemetryPath(cuid=cuid, tmid=tmid, cdid=cdid)


def _numbered(rest: list[str], number: str) -> tuple[str, int | None, str | None]:
    """[cdid=X/]cuid=X[/NUMBER=N], in this order: (cuid, NUMBER's value or None, cdid or None)."""
    parameters = [_split(segment) for segment in rest]
    names = [name for name, _ in parameters]
    allowed = (["cuid"], ["cuid", number], ["cdid", "cuid"], ["cdid", "cuid", number])
    if names not in allowed:
        if "cuid" not in names:
            raise reject("4.00", "the mandatory 'cuid' Uri-Path is missing")
        raise reject("4.00", f"Uri-Path parameters {names} are not in the order [cdid=]/cuid=/[{number}=]")
    values = dict(parameters)
    value = _uint32(values[number], number) if number in values else None
    return values["cuid"], value, values.get("cdid")


def _config(rest: list[str]) -> ConfigPath:
    if not rest:
        return ConfigPath()
    parameters = [_split(segment) for segment in rest]
    if len(parameters) != 1 or parameters[0][0] != "sid":
        raise reject("4.00", "the config resource takes only a 'sid' Uri-Path ('cuid' must not be used)")
    return ConfigPath(sid=_uint32(parameters[0][1], "sid"))


def _split(segment: str) -> tuple[str, str]:
    name, equals, value = segment.partition("=")
    if not equals or name not in ("cuid", "cdid", "mid", "sid", "tsid", "tmid"):
        raise reject("4.00", f"unexpected Uri-Path {segment!r}")
    if not value:
        raise reject("4.00", f"Uri-Path '{name}' has an empty value")
    return name, value


def _uint32(text: str, name: str) -> int:
    if not _UNSIGNED.fullmatch(text) or int(text) > UINT32_MAX:
        raise reject("4.00", f"'{name}' must be an unsigned 32-bit integer, not {text!r}")
    return int(text)
