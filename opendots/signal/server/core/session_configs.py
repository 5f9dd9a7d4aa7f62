"""The session configuration each client installed (RFC 9132 §4.5): GET, PUT and DELETE on /config."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import SessionConfigChanged
from opendots.signal.server.core.messages import Request, Response, reject
from opendots.signal.server.core.paths import ConfigPath
from opendots.signal.server.core.robust import RobustTransmission
from opendots.signal.server.core.sessionconfig import (
    Limits,
    ParameterSet,
    SessionConfig,
    parse_config_body,
    render_config,
)
from opendots.store.records import SessionConfigRecord, SignalChanges


class SessionConfigs:
    def __init__(
        self,
        defaults: SessionConfig,
        limits: Limits,
        max_age: int,
        on_changed: Callable[[str, float], None],
    ) -> None:
        self.defaults = defaults
        self.limits = limits
        self.max_age = max_age
        self._installed: dict[str, SessionConfig] = {}
        self._on_changed = on_changed  # the client's heartbeat clock restarts on the new parameters

    def restored(self, records: Iterable[SessionConfigRecord]) -> None:
        for record in records:
            self._installed[record.client] = SessionConfig.from_json(record.config)

    def replace_for(self, client: str, record: SessionConfigRecord | None, now: float) -> bool:
        """What another node stored for CLIENT (None: nothing): held from now on, its heartbeat clock rearmed on it
        as for a PUT here. Whether anything changed (an echo or a second read changes nothing)."""
        config = None if record is None else SessionConfig.from_json(record.config)
        if self._installed.get(client) == config:
            return False
        self._install(client, config, now)
        return True

    def of(self, client: str) -> SessionConfig:
        return self._installed.get(client, self.defaults)

    def parameters(self, client: str, mitigating: bool) -> ParameterSet:
        return self.of(client).for_activity(mitigating)

    def robust(self, client: str, mitigating: bool) -> RobustTransmission:
        """The Q-Block values in force for CLIENT's session (RFC 9362), derived ones held in the server's limits."""
        return self.parameters(client, mitigating).robust(self.limits)

    def handle(self, client: str, path: ConfigPath, request: Request, now: float, decision: Decision) -> Response:
        current = self._installed.get(client)
        if request.method == "GET":
            if path.sid is not None and (current is None or current.sid != path.sid):
                raise reject("4.04", f"no session configuration with sid={path.sid}")
            body = render_config(self.of(client), self.limits)
            return Response("2.05", body=body, max_age=self.max_age, observable=request.observe == 0)
        if request.method == "PUT":
            if path.sid is None:
                raise reject("4.00", "the mandatory 'sid' Uri-Path is missing")
            if current is not None and current.sid is not None and path.sid < current.sid:
                raise reject("4.00", f"'sid' must increase: sid={current.sid} is already installed")
            config = parse_config_body(request.body, self.defaults, self.limits, path.sid)
            decision.changes = SignalChanges(put_session_configs=[SessionConfigRecord(client, config.to_json())])
            decision.then(lambda: self._install(client, config, now))
            decision.events.append(SessionConfigChanged(client))
            return Response("2.04" if current is not None and current.sid == path.sid else "2.01")
        if request.method == "DELETE":
            if path.sid is not None and (current is None or current.sid != path.sid):
                raise reject("4.04", f"no session configuration with sid={path.sid}")
            if current is not None:
                decision.changes = SignalChanges(delete_session_configs=[client])
                decision.then(lambda: self._install(client, None, now))
                decision.events.append(SessionConfigChanged(client))
            return Response("2.02")
        raise reject("4.05", f"{request.method} is not allowed on config")

    def _install(self, client: str, config: SessionConfig | None, now: float) -> None:
        if config is None:
            del self._installed[client]
        else:
            self._installed[client] = config
        self._on_changed(client, now)
