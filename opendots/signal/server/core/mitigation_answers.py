"""The answers to mitigation requests (RFC 9132 §4.4) kept encoded: a PUT's acknowledgement and a GET's 2.05 of a
single mitigation, for as long as what they show holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opendots.model import EncodedSignal
from opendots.signal.server.core.messages import MITIGATION_SCOPE, Response
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.paths import MitigatePath
from opendots.signal.server.core.scope import ACL_LIST

RENDERED_BODIES = 4096
"""GET answers kept encoded (RenderedAnswers) before they are all dropped."""


class RenderedAnswers:
    def __init__(self) -> None:
        self._rendered: dict[tuple[str, str, int | None, tuple[str, ...]], tuple[tuple[Any, ...], int, Response]] = {}
        """GET answers of single mitigations, by (client, cuid, mid, Uri-Query): see answer."""

    def answer(
        self, client: str, path: MitigatePath, query: Iterable[str], content: str, found: Mitigation, now: float
    ) -> Response | None:
        """The 2.05 answering a GET of FOUND, CLIENT's own, its body rendered and encoded once for as long as what it
        shows holds: the same held mitigation (a change of status, lifetime, request or anything stored holds a new
        one), the same counters, telemetry attributes and conflict (replaced, never changed in place) and the same
        remaining lifetime in whole seconds. None when it shows what the core does not hold ('acl-list' activation
        types live in the data channel: read afresh each time)."""
        if ACL_LIST in found.record.request:
            return None
        key = (client, path.cuid, path.mid, tuple(query))
        lifetime = found.remaining_lifetime(now)
        cached = self._rendered.get(key)
        if cached is not None and cached[1] == lifetime:
            held, record, counters, telemetry, conflict = cached[0]
            if (
                held is found
                and record is found.record
                and counters is found.counters
                and telemetry is found.telemetry
                and conflict is found.conflict
            ):
                return cached[2]
        shown = (found, found.record, found.counters, found.telemetry, found.conflict)
        answer = Response("2.05", body=EncodedSignal({MITIGATION_SCOPE: {"scope": [found.render(now, content)]}}))
        if len(self._rendered) >= RENDERED_BODIES:
            self._rendered.clear()  # bounded whatever the queries: they are rendered again on the next GET
        self._rendered[key] = (shown, lifetime, answer)
        return answer


def acknowledged(code: str, mitigation: Mitigation, now: float, remaining: int | None = None) -> Response:
    """The answer to an accepted PUT (RFC 9132 §4.4.1: its mid, the lifetime granted, any conflict). REMAINING: its
    remaining lifetime when the caller knows it (a refresh: the lifetime just granted), else computed."""
    record = mitigation.record
    entry: dict[str, Any] = {
        "mid": record.mid,
        "lifetime": mitigation.remaining_lifetime(now) if remaining is None else remaining,
    }
    if mitigation.conflict:
        entry["conflict-information"] = mitigation.conflict
        return Response(code, body={MITIGATION_SCOPE: {"scope": [entry]}})
    # Nothing but the mid and the lifetime granted (nearly every refresh): the same (frozen) answer each time.
    key = (code, record.mid, entry["lifetime"])
    response = _ACKS.get(key)
    if response is None:
        if len(_ACKS) >= RENDERED_BODIES:
            _ACKS.clear()
        response = _ACKS[key] = Response(code, body=EncodedSignal({MITIGATION_SCOPE: {"scope": [entry]}}))
    return response


_ACKS: dict[tuple[str, int, int], Response] = {}
"""Answers to PUTs, their bodies encoded, by (code, mid, remaining lifetime): what they show is their key (shared by
every server)."""
