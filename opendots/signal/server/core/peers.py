"""Each client's liveness on the server side (RFC 9132 §4.7): traffic seen, heartbeats owed, sessions lost.

Kept in memory only: a restarted server gives every client with stored mitigations a fresh clock. The clock of a
client runs on the parameter set in force for it (idle or mitigating, §4.5), which `parameters` tells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opendots.model import encode_signal
from opendots.signal.server.core.bodies import body_of
from opendots.signal.server.core.events import Event, HeartbeatDue, PeerBack
from opendots.signal.server.core.heartbeat import PeerLiveness, TimerTable
from opendots.signal.server.core.messages import HEARTBEAT, Request, Response, reject
from opendots.signal.server.core.sessionconfig import ParameterSet


class Peers:
    def __init__(self, parameters: Callable[[str], ParameterSet]) -> None:
        self._parameters = parameters
        self._peers: dict[str, PeerLiveness] = {}
        self.timers = TimerTable()  # each peer's next heartbeat or loss deadline
        self._dirty: set[str] = set()  # clients whose traffic or parameter set changed: timers to look at again

    def get(self, client: str) -> PeerLiveness | None:
        return self._peers.get(client)

    def restored(self, clients: Iterable[str], now: float) -> None:
        """After a restart: each client with stored mitigations gets a fresh liveness clock."""
        for client in clients:
            self._peers.setdefault(client, PeerLiveness(last_traffic=now))
            self._dirty.add(client)
        self.flush(now)

    def forget(self, client: str) -> None:
        """No liveness clock for CLIENT until its traffic is seen here again."""
        self._peers.pop(client, None)
        self.timers.set(client, None)
        self._dirty.discard(client)

    def saw_traffic(self, client: str, now: float) -> list[Event]:
        """A message from CLIENT itself (never something the server does on its behalf) proves it alive."""
        peer = self._peers.get(client)
        if peer is not None and not peer.lost:
            # Nearly every message: only the loss deadline moves, and later. Its timer is left where it is: firing at
            # the old deadline, `due` finds the session alive and reschedules it from last_traffic (no sync per
            # message; the heartbeat deadline, usually the earlier one, does not move with traffic at all).
            peer.last_traffic = now
            return []
        self._dirty.add(client)  # its clock is synced with the parameters in force at the flush that follows
        if peer is None:
            self._peers[client] = peer = PeerLiveness(last_traffic=now)
        revived = peer.saw_traffic(now, self._parameters(client))
        return [PeerBack(client)] if revived else []

    def changed(self, client: str) -> None:
        """CLIENT's parameter set may have switched (its enforcement or configuration changed)."""
        self._dirty.add(client)

    def config_changed(self, client: str, now: float) -> None:
        """CLIENT's session configuration changed: its heartbeat clock restarts on the new parameters."""
        peer = self._peers.get(client)
        if peer is not None:
            peer.rearm(now, self._parameters(client))
        self._dirty.add(client)

    def flush(self, now: float) -> None:
        while self._dirty:
            self._sync(self._dirty.pop(), now)

    def _sync(self, client: str, now: float) -> None:
        """Arm CLIENT's clock for the parameter set in force, and (re)schedule its timer."""
        peer = self._peers.get(client)
        if peer is None:
            return
        parameters = self._parameters(client)
        peer.sync(now, parameters)
        loss, heartbeat = peer.loss_deadline(parameters), peer.heartbeat_deadline(parameters)
        self.timers.set(client, loss if heartbeat is None else heartbeat if loss is None else min(loss, heartbeat))

    def next_due(self) -> float | None:
        earliest = self.timers.earliest()
        return earliest[0] if earliest is not None else None

    def due(self, now: float, events: list[Event]) -> str | None:
        """Send the heartbeats that are due (appended to EVENTS) until a peer whose session is lost comes up: its
        name is returned, and it stays scheduled until `lost(name)` is called (after the decision about its
        mitigations is stored). None: nothing more is due now."""
        while (earliest := self.timers.earliest()) is not None and earliest[0] <= now:
            name = earliest[1]
            peer = self._peers[name]
            parameters = self._parameters(name)
            loss = peer.loss_deadline(parameters)
            if loss is not None and loss <= now:
                return name
            heartbeat = peer.heartbeat_deadline(parameters)
            if heartbeat is not None and heartbeat <= now:
                events.append(HeartbeatDue(name, peer.peer_hb_status(now, parameters)))
                peer.next_heartbeat = max(heartbeat + parameters.heartbeat_interval, now)
            self.timers.set(name, None)  # looked at: rescheduled from its new state just below
            self._sync(name, now)
        return None

    def lost(self, client: str, now: float) -> None:
        self._peers[client].lost = True
        self.timers.set(client, None)
        self._sync(client, now)

    def heartbeat(self, client: str, request: Request, now: float, events: list[Event]) -> Response:
        """PUT /hb from CLIENT (§4.7). A body in its usual encoding is read without the CBOR decoder and the data
        model (the message every session repeats); any other goes through them."""
        if request.method != "PUT":
            raise reject("4.05", f"{request.method} is not allowed on hb")
        heard = _USUAL_PAYLOADS.get(request.payload) if request.payload is not None else None
        if heard is None:
            content = _heartbeat_content(body_of(request))
            if content is None:
                raise reject("4.00", f"a heartbeat body is {{'{HEARTBEAT}': {{'peer-hb-status': true|false}}}}")
            if not isinstance(content["peer-hb-status"], bool):
                raise reject("4.00", "'peer-hb-status' must be true or false")
            heard = content["peer-hb-status"]
        peer = self._peers[client]
        peer.last_client_heartbeat = now
        if not heard:
            # The client does not hear our heartbeats: send one right away (§4.7).
            parameters = self._parameters(client)
            events.append(HeartbeatDue(client, peer.peer_hb_status(now, parameters)))
            peer.rearm(now, parameters)
            self._dirty.add(client)  # its next heartbeat moved: rescheduled at the flush that follows
        return _CHANGED


_CHANGED = Response("2.04")
"""Every heartbeat's answer (frozen: one for all)."""

_USUAL_PAYLOADS = {encode_signal({HEARTBEAT: {"peer-hb-status": heard}}): heard for heard in (True, False)}
"""The CBOR of each heartbeat body as opendots and most encoders write it (definite lengths, the shortest form):
such a payload says just this, so it is answered without decoding."""


def _heartbeat_content(body: Any) -> dict[str, Any] | None:
    content = body.get(HEARTBEAT) if isinstance(body, dict) and set(body) == {HEARTBEAT} else None
    return content if isinstance(content, dict) and set(content) == {"peer-hb-status"} else None
