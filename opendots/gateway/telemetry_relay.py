"""RFC 9244 telemetry through the gateway (sans-I/O): the tm-setup (§7) and tm (§8) requests that
`relay.RelayCore` hands over, and their answers and Observe notifications (§8.3, §9).

- client-domain: every downstream (client, cuid, tsid|tmid) gets an upstream 'tsid'/'tmid' of its own under the
  gateway's 'cuid', allocated durably from one counter per resource before the request leaves (they must increase,
  §7.1.2 and §8.2, and upstream every client shares the gateway's 'cuid'); the numbers in the answers are mapped
  back and a GET of all is filtered to the client's own, as 'mid's are. A 'mid-list' target (§8.1.6) and a 'mid'
  Uri-Query name the client's own mitigations: they go upstream as those mitigations' upstream 'mid's. The upstream
  server sees one DOTS client: a newer setup of one client replaces the older overlapping ones of every client
  behind the gateway there (§7.1.2), which is what aggregation means (RFC 8811 §2.3). A DELETE of all of a 'cuid'
  (§7.4, §8.2) becomes one DELETE per number the client holds, not one that would take everyone's.
- server-domain: relayed as they came, with the 'cdid' of RFC 9244 §5.2 (RFC 9132 §4.4.1.2) the relay adds.

Either way the setups accepted upstream are kept with the body sent there (`TelemetryLink.payload`): an upstream
server that lost them (a new session, or a restart without its state, RFC 9244 §7: setups are not tied to a session)
gets them again, in the order they were made, as it gets the mitigations again (relay_loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opendots.config import ClientAuthorization
from opendots.domain import ScopeError
from opendots.domain.targets import parse_targets
from opendots.gateway.relay_messages import Outbound
from opendots.model import ModelError, decode_telemetry, encode_telemetry
from opendots.signal.server.core.authorization import check_authorized
from opendots.signal.server.core.messages import Rejected

TELEMETRY_SETUP = "ietf-dots-telemetry:telemetry-setup"
TELEMETRY = "ietf-dots-telemetry:telemetry"
DOTS_CBOR = 271
TARGET_MEMBERS = ("target-prefix", "target-fqdn", "target-uri")


@dataclass(frozen=True)
class Resource:
    name: str
    number: str
    """The Uri-Path parameter and body attribute that names one request ('tsid', 'tmid')."""
    container: str
    entries: str


RESOURCES = {
    "tm-setup": Resource("tm-setup", "tsid", TELEMETRY_SETUP, "telemetry"),
    "tm": Resource("tm", "tmid", TELEMETRY, "pre-or-ongoing-mitigation"),
}


@dataclass(frozen=True)
class TelemetryLink:
    """A downstream tsid/tmid and its upstream counterpart (client-domain), kept while it is installed upstream."""

    resource: str
    client: str
    cuid: str
    number: int
    upstream: int
    payload: bytes | None = None
    """The body accepted upstream (tm-setup only: what a re-establishment sends again; None: not re-sent)."""
    cdid: str | None = None
    """Server-domain: the 'cdid' the relay put in the upstream path."""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.resource, self.client, self.cuid, self.number)


class TelemetryState(Protocol):
    """What is kept durably (opendots.store.gateway_state.RelayStore)."""

    def allocate(self, name: str) -> int: ...

    def save_telemetry(self, link: TelemetryLink) -> None: ...

    def delete_telemetry(self, key: tuple[str, str, str, int]) -> None: ...

    def load_telemetry(self) -> list[TelemetryLink]: ...


MidMap = Callable[[str, str, int], "int | None"]
"""(client, cuid, mid) → the upstream 'mid' of that client's mitigation, or the reverse (client, cuid, upstream mid)
→ the client's 'mid'; None when the client has no such mitigation through this gateway."""


class Refused(Exception):
    """A request answered here: CODE with DIAGNOSTIC."""

    def __init__(self, code: str, diagnostic: str) -> None:
        super().__init__(diagnostic)
        self.code = code
        self.diagnostic = diagnostic


@dataclass
class TelemetryRelay:
    state: TelemetryState
    upstream_cuid: str
    upstream_mid: MidMap
    downstream_mid: MidMap
    links: dict[tuple[str, str, str, int], TelemetryLink] = field(default_factory=dict)
    _pending: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    client_domain: bool = True
    resending: set[tuple[str, str, str, int]] = field(default_factory=set)
    """Setups PUT again upstream whose answer has not come: not queued twice."""

    def __post_init__(self) -> None:
        self._by_upstream: dict[tuple[str, int], TelemetryLink] = {}
        self._by_pair: dict[tuple[str, str, str], set[int]] = {}
        for link in self.state.load_telemetry():
            self._hold(link)

    # --- client-domain requests ---------------------------------------------------------------------------------

    def upstream_number(self, resource: str, client: str, cuid: str, number: int, method: str) -> int:
        """The upstream tsid/tmid for the client's NUMBER (a new one, durably allocated, for a first PUT)."""
        key = (resource, client, cuid, number)
        link = self.links.get(key)
        if link is not None:
            return link.upstream
        if method != "PUT":
            raise Refused("4.04", f"no {resource} with {RESOURCES[resource].number}={number} of cuid={cuid} here")
        held = self._by_pair.get((resource, client, cuid))
        if held and max(held) > number:
            name = RESOURCES[resource].number
            raise Refused("4.00", f"'{name}' must increase: {name}={max(held)} is already installed")
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = self.state.allocate(RESOURCES[resource].number)
        return pending

    def own_numbers(self, resource: str, client: str, cuid: str) -> list[int]:
        return sorted(self._by_pair.get((resource, client, cuid), ()))

    def request_payload(self, client: str, cuid: str, payload: bytes | None) -> bytes | None:
        """A tm PUT body with each 'mid-list' naming the upstream 'mid's of the client's mitigations."""
        body = decoded(payload)
        entries = _entries(body, RESOURCES["tm"])
        if body is None or not any(isinstance(e.get("target"), dict) and "mid-list" in e["target"] for e in entries):
            return payload
        mapped = []
        for entry in entries:
            target = entry.get("target")
            if isinstance(target, dict) and isinstance(target.get("mid-list"), list):
                upstream = []
                for mid in target["mid-list"]:
                    found = self.upstream_mid(client, cuid, mid) if isinstance(mid, int) else None
                    if found is None:
                        raise Refused("4.00", f"'mid-list' names mid={mid}, which is not a mitigation of this client")
                    upstream.append(found)
                entry = {**entry, "target": {**target, "mid-list": upstream}}
            mapped.append(entry)
        container = body[TELEMETRY]
        return encode_telemetry({**body, TELEMETRY: {**container, "pre-or-ongoing-mitigation": mapped}}, validate=False)

    def request_query(self, client: str, cuid: str, query: tuple[str, ...]) -> tuple[str, ...]:
        """A tm GET's 'mid' Uri-Query (§8.2) names the client's mitigation: its upstream 'mid' goes upstream."""
        mapped = []
        for item in query:
            name, _, value = item.partition("=")
            if name == "mid" and value.isdigit():
                found = self.upstream_mid(client, cuid, int(value))
                if found is None:
                    raise Refused("4.04", f"no mitigation mid={value} of cuid={cuid} here")
                item = f"mid={found}"
            mapped.append(item)
        return tuple(mapped)

    # --- answers -----------------------------------------------------------------------------------------------

    def settled(self, resource: str, client: str, cuid: str, number: int | None, upstream: int | None) -> None:
        """The PUT that allocated UPSTREAM was answered (or failed): the allocation is not pending any more."""
        if number is not None and self._pending.get(key := (resource, client, cuid, number)) == upstream:
            del self._pending[key]

    def answered(self, sent: Outbound, code: str) -> Outbound | None:
        """Links updated for the upstream answer CODE to SENT (a request about a tsid/tmid, or a DELETE of all of a
        'cuid'); an upstream DELETE to send when SENT re-established a setup its client deleted meanwhile."""
        resource, client, cuid, number, upstream = sent.resource, sent.client, sent.cuid, sent.mid, sent.upstream_mid
        if sent.reestablish and number is not None:
            self.resending.discard((resource, client, cuid, number))
        if not self.client_domain and resource != "tm-setup":
            return None  # server-domain: numbers go upstream unchanged, only setups are kept (to be sent again)
        if number is None or upstream is None:
            if sent.method == "DELETE" and (code.startswith("2.") or code == "4.04") and not self.client_domain:
                for held in self.own_numbers(resource, client, cuid):  # §7.4: all of the 'cuid' deleted upstream
                    self._forget((resource, client, cuid, held))
            return None
        key = (resource, client, cuid, number)
        previous = self.links.get(key)
        if sent.method == "PUT" and code.startswith("2."):
            if sent.reestablish:
                # Re-sent from the link: a link gone meanwhile was deleted by its client, so it goes upstream too;
                # one still there keeps its body (a newer PUT of the client may have changed it).
                return self._withdrawal(sent) if previous is None else None
            payload = sent.payload if resource == "tm-setup" else None
            link = TelemetryLink(resource, client, cuid, number, upstream, payload, sent.cdid)
            if previous != link:
                self.state.save_telemetry(link)
                self._hold(link)
        elif sent.method == "PUT" and sent.reestablish and code.startswith("4."):
            # Refused when sent again (e.g. 4.00: a newer overlapping setup replaced it upstream and stays, §7.1.2):
            # it is gone upstream, so it is gone here as well.
            self._forget(key)
        elif (sent.method == "DELETE" and (code.startswith("2.") or code == "4.04")) or (
            sent.method == "GET" and code == "4.04"
        ):
            self._forget(key)  # withdrawn, or gone upstream (a newer overlapping one replaced it, §7.1.2, §8.2)
        return None

    def reestablishments(self, hop_limit: int) -> list[Outbound]:
        """A PUT per setup held upstream (RFC 9244 §7), in the order the upstream server got them (its 'tsid's
        increase, and a newer setup replaces the older ones it overlaps, §7.1.2), none already on its way."""
        links = [
            link
            for link in self.links.values()
            if link.resource == "tm-setup" and link.payload is not None and link.key not in self.resending
        ]
        links.sort(key=lambda link: (self._upstream_cuid(link), link.upstream))
        self.resending.update(link.key for link in links)
        return [self._reestablishment(link, hop_limit) for link in links]

    def _reestablishment(self, link: TelemetryLink, hop_limit: int) -> Outbound:
        return Outbound(
            method="PUT", path=self._upstream_path(link), query=(), payload=link.payload, hop_limit=hop_limit,
            observe=None, if_match_empty=False, client=link.client, cuid=link.cuid, mid=link.number,
            upstream_mid=link.upstream, cdid=link.cdid, reestablish=True, confirmable=False, resource=link.resource,
        )  # fmt: skip

    def not_sent(self, sent: Outbound) -> None:
        """SENT (a re-establishment) got no answer: it may be queued again."""
        if sent.reestablish and sent.mid is not None:
            self.resending.discard((sent.resource, sent.client, sent.cuid, sent.mid))

    def _withdrawal(self, sent: Outbound) -> Outbound:
        return Outbound(
            method="DELETE", path=sent.path, query=(), payload=None, hop_limit=sent.hop_limit, observe=None,
            if_match_empty=False, client=sent.client, cuid=sent.cuid, mid=sent.mid, upstream_mid=sent.upstream_mid,
            cdid=sent.cdid, confirmable=False, resource=sent.resource,
        )  # fmt: skip

    def _upstream_cuid(self, link: TelemetryLink) -> str:
        return self.upstream_cuid if self.client_domain else link.cuid

    def _upstream_path(self, link: TelemetryLink) -> tuple[str, ...]:
        cdid = (f"cdid={link.cdid}",) if link.cdid else ()
        name = RESOURCES[link.resource].number
        return (link.resource, *cdid, f"cuid={self._upstream_cuid(link)}", f"{name}={link.upstream}")

    def rewrite(
        self, resource: str, client: str, cuid: str, number: int | None, upstream: int | None, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """An upstream answer with the client's numbers (and 'mid's) in place of the upstream ones; other clients'
        entries dropped (None: nothing left of a list that had entries)."""
        spec = RESOURCES[resource]
        container = body.get(spec.container)
        if not isinstance(container, dict) or not isinstance(container.get(spec.entries), list):
            return body
        kept = []
        for entry in container[spec.entries]:
            if not isinstance(entry, dict):
                continue
            entry = dict(entry)
            if spec.number in entry:
                link = self._by_upstream.get((resource, entry[spec.number]))
                if link is not None and link.client == client and link.cuid == cuid:
                    entry[spec.number] = link.number
                elif upstream is not None and number is not None and entry[spec.number] == upstream:
                    entry[spec.number] = number  # the answer to a PUT not linked yet
                else:
                    continue  # another client's: never shown to this one
            target = entry.get("target")
            if isinstance(target, dict) and isinstance(target.get("mid-list"), list):
                mids = [self.downstream_mid(client, cuid, mid) for mid in target["mid-list"] if isinstance(mid, int)]
                entry["target"] = {**target, "mid-list": [mid for mid in mids if mid is not None]}
            kept.append(entry)
        if container[spec.entries] and not kept:
            return None
        return {**body, spec.container: {**container, spec.entries: kept}}

    def _hold(self, link: TelemetryLink) -> None:
        previous = self.links.get(link.key)
        if previous is not None:
            self._by_upstream.pop((previous.resource, previous.upstream), None)
        self.links[link.key] = link
        self._by_upstream[(link.resource, link.upstream)] = link
        self._by_pair.setdefault((link.resource, link.client, link.cuid), set()).add(link.number)

    def _forget(self, key: tuple[str, str, str, int]) -> None:
        link = self.links.pop(key, None)
        if link is None:
            return
        self.state.delete_telemetry(key)
        self._by_upstream.pop((link.resource, link.upstream), None)
        numbers = self._by_pair.get((link.resource, link.client, link.cuid), set())
        numbers.discard(link.number)
        if not numbers:
            self._by_pair.pop((link.resource, link.client, link.cuid), None)


def out_of_scope(payload: bytes | None, client: ClientAuthorization) -> Refused | None:
    """A tm PUT about targets CLIENT may not protect (as the server checks a client's own, RFC 9244 §8.2): upstream
    the gateway is authorized for all its clients, and server-originated telemetry (§8.3) for a target sums the
    gateway's mitigations there, its other clients' among them. Aliases are the upstream server's to resolve; a
    'mid-list' names the client's own mitigations (mapped above)."""
    for entry in _entries(decoded(payload), RESOURCES["tm"]):
        target = entry.get("target")
        if not isinstance(target, dict) or not any(name in target for name in TARGET_MEMBERS):
            continue
        try:
            check_authorized(client, parse_targets(target))
        except ScopeError as error:
            return Refused("4.00", str(error))
        except Rejected as refused:
            return Refused(refused.response.code, refused.response.diagnostic or "")
    return None


def decoded(payload: bytes | None, content_format: int | None = DOTS_CBOR) -> dict[str, Any] | None:
    """A telemetry body (ietf-dots-telemetry), None when there is none or it is not one."""
    if content_format not in (None, DOTS_CBOR):
        return None
    try:
        return decode_telemetry(payload) if payload else None
    except (ModelError, ValueError):
        return None


def _entries(body: dict[str, Any] | None, spec: Resource) -> list[dict[str, Any]]:
    container = (body or {}).get(spec.container)
    entries = container.get(spec.entries) if isinstance(container, dict) else None
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
