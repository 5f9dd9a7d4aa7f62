"""The relay when the upstream session is lost or slow (RFC 9132 §4.4.1, §4.4.4, §4.7): a request that got no
answer is answered 5.03 with a Max-Age; the accepted mitigations are PUT again, with the lifetime they have left,
when the session is back, and so are the RFC 9244 telemetry setups (§7: not tied to a session), also when a
mitigation is found lost upstream (its server restarted without its state); and a PUT still on its way when its
mitigation was withdrawn (a retransmission, a re-establishment) does not bring it back: it is withdrawn upstream
again (`stale`)."""

from __future__ import annotations

import math
from collections import Counter

from opendots.gateway.relay_links import Link, MidMapping
from opendots.gateway.relay_messages import UPSTREAM_DOWN, Outbound, Reply, with_lifetime
from opendots.gateway.telemetry_relay import TelemetryRelay


class UpstreamLoss(MidMapping):
    """RelayCore's answers to a lost upstream, its re-establishment and its withdrawal races (a mixin)."""

    upstream_up: bool
    stale: list[Outbound]
    resend: list[Outbound]
    telemetry: TelemetryRelay
    _pending: dict[tuple[str, str, int], int]
    _withdrawals: int
    _withdrawn: dict[tuple[str, str, int], int]
    _in_flight: Counter[tuple[str, str, int]]

    def failed(self, sent: Outbound, reason: str) -> Reply:
        """No answer from upstream (the session broke, or every transmission went unanswered)."""
        if sent.resource != "mitigate" and sent.method == "PUT":
            self.telemetry.settled(sent.resource, sent.client, sent.cuid, sent.mid, sent.upstream_mid)
            self.telemetry.not_sent(sent)
        elif sent.mid is not None and sent.method == "PUT":
            self._unpend((sent.client, sent.cuid, sent.mid), sent.upstream_mid)
            self._settled((sent.client, sent.cuid, sent.mid))
        self.counters["upstream-failed"] += 1
        return Reply.error("5.03", f"{UPSTREAM_DOWN} ({reason})", max_age=self.settings.retry_after)

    def current(self, sent: Outbound) -> bool:
        """False for a PUT built before its mitigation was withdrawn (RFC 9132 §4.4.4): it must not re-create it."""
        if sent.method != "PUT" or sent.mid is None or sent.resource != "mitigate":
            return True  # a telemetry setup deleted meanwhile: see TelemetryRelay.answered
        withdrawn = self._withdrawn.get((sent.client, sent.cuid, sent.mid))
        return withdrawn is None or withdrawn <= sent.generation

    def dropped(self, sent: Outbound) -> None:
        """SENT (a PUT) will not be sent after all."""
        if sent.resource != "mitigate":
            self.telemetry.not_sent(sent)
        elif sent.mid is not None and sent.method == "PUT":
            self._settled((sent.client, sent.cuid, sent.mid))

    def _unpend(self, key: tuple[str, str, int], upstream_mid: int | None) -> None:
        if self._pending.get(key) == upstream_mid:  # not a newer PUT's allocation
            del self._pending[key]

    def _settled(self, key: tuple[str, str, int]) -> None:
        # A withdrawal is remembered only while a PUT built before it may still be answered: bounded by those.
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
            self._withdrawn.pop(key, None)

    def _withdrawal(self, sent: Outbound) -> Outbound:
        assert sent.upstream_mid is not None
        path = ("mitigate", *((f"cdid={sent.cdid}",) if sent.cdid else ()), *sent.path[-2:])
        return Outbound(
            method="DELETE", path=path, query=(), payload=None, hop_limit=self.settings.hop_limit, observe=None,
            if_match_empty=False, client=sent.client, cuid=sent.cuid, mid=sent.mid, upstream_mid=sent.upstream_mid,
            cdid=sent.cdid, generation=self._withdrawals, confirmable=False,
        )  # fmt: skip

    def upstream_changed(self, up: bool) -> None:
        self.upstream_up = up

    def reestablish(self, now: float) -> list[Outbound]:
        """The upstream session is (back) up: a PUT per accepted mitigation, with the lifetime it has left, then
        one per telemetry setup held upstream."""
        self.expire(now)
        links = sorted(self.links.values(), key=lambda link: link.accepted_at)
        mitigations = [self._reestablishment(link, now) for link in links]
        return mitigations + self.telemetry.reestablishments(self.settings.hop_limit)

    def _reestablishment(self, link: Link, now: float) -> Outbound:
        payload = link.payload
        if link.expires_at is not None:
            payload = with_lifetime(payload, max(1, math.ceil(link.expires_at - now)))
        self._in_flight[link.key] += 1
        return Outbound(
            method="PUT", path=link.upstream_path(), query=(), payload=payload, hop_limit=self.settings.hop_limit,
            observe=None, if_match_empty=False, client=link.client, cuid=link.cuid, mid=link.mid,
            upstream_mid=link.upstream_mid, cdid=link.cdid, reestablish=True, generation=self._withdrawals,
            confirmable=False,
        )  # fmt: skip

    def _gone_upstream(self, key: tuple[str, str, int], now: float) -> None:
        """A GET found the mitigation gone upstream: expired there, it is forgotten; with lifetime left the server
        lost it (restarted without it on a new DTLS session, RFC 9132 §4.7) and it is PUT again under the same
        upstream 'mid' (`resend`), so that the client re-creating it after its 4.04 gets that 'mid' as well."""
        link = self.links.get(key)
        if link is None or (link.expires_at is not None and link.expires_at - now < 2):
            self._forget(key)
        elif not self._in_flight[key]:
            self.resend.append(self._reestablishment(link, now))
            # A server that lost a mitigation lost the telemetry setups with it (RFC 9244 §7: they outlive
            # sessions, not a restart without state): they go again too, unless already on their way.
            self.resend.extend(self.telemetry.reestablishments(self.settings.hop_limit))
