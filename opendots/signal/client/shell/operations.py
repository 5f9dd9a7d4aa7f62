"""The client's verbs (mitigate, status, withdraw, efficacy, config get/set/delete), shared by the agent's control
API and one-shot CLI runs. Arguments and results are JSON-ready dicts, so the control socket just relays them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from opendots.errors import UsageError
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsRequest, DotsResponse
from opendots.signal.client.core.scope import MitigationScope, ScopeError, scopes_overlap
from opendots.signal.client.core.timing import ConfigValueError
from opendots.signal.client.shell.telemetry_operations import TELEMETRY_OPERATIONS, TelemetryOperations

Sender = Callable[[DotsRequest], Awaitable[DotsResponse]]
AfterResponse = Callable[[DotsResponse], Awaitable[bool]]
"""Called after the core saw a response; returns True when the request must be sent again (redirection followed)."""
OPERATIONS = (
    "mitigate",
    "status",
    "withdraw",
    "efficacy",
    "config-get",
    "config-set",
    "config-delete",
    *TELEMETRY_OPERATIONS,
)


class OperationError(UsageError):
    """A verb that cannot be carried out; `code` mirrors a CoAP code where one fits ("4.00" for bad arguments)."""

    def __init__(self, message: str, code: str = "4.00") -> None:
        super().__init__(message)
        self.code = code


def response_json(response: DotsResponse) -> dict[str, Any]:
    result: dict[str, Any] = {"code": response.code, "body": response.body}
    if response.diagnostic:
        result["diagnostic"] = response.diagnostic
    if response.max_age is not None:
        result["max-age"] = response.max_age
    return result


def _int(args: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = args.get(name)
    if value is None:
        if required:
            raise OperationError(f"missing argument {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise OperationError(f"argument {name!r} must be an integer")
    return value


class ClientOperations:
    """Runs one verb on CORE, sending through SEND (the agent's session or a one-shot connection)."""

    def __init__(
        self,
        core: DotsClientCore,
        send: Sender,
        clock: Callable[[], float] = time.time,
        after_response: AfterResponse | None = None,
    ) -> None:
        self.core = core
        self.send = send
        self.clock = clock
        self.after_response = after_response

    async def dispatch(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = {
            "mitigate": self.mitigate,
            "status": self.status,
            "withdraw": self.withdraw,
            "efficacy": self.efficacy,
            "config-get": self.config_get,
            "config-set": self.config_set,
            "config-delete": self.config_delete,
            **TelemetryOperations(self).handlers(),
        }.get(operation)
        if handler is None:
            raise OperationError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        try:
            return await handler(args)
        except (ScopeError, ConfigValueError) as error:
            raise OperationError(str(error)) from None

    async def _exchange(self, request: DotsRequest) -> DotsResponse:
        for _ in range(2):  # the second round only after following a redirection (RFC 9132 §4.6)
            try:
                response = await self.send(request)
            except BaseException:
                self.core.request_failed(request)
                raise
            self.core.handle_response(request, response, self.clock())
            if self.after_response is None or not await self.after_response(response):
                break
        return response

    async def mitigate(self, args: dict[str, Any]) -> dict[str, Any]:
        scope_entry = args.get("scope")
        if not isinstance(scope_entry, dict):
            raise OperationError("missing argument 'scope' (a mitigation scope entry in YANG-JSON)")
        scope = MitigationScope.from_yang(scope_entry)
        request = self.core.mitigate(scope, self.clock(), mid=_int(args, "mid", required=False))
        # §4.4.1: a granted request deletes this client's overlapping requests with lower mids at the server.
        overlapped = sorted(
            record.mid
            for record in self.core.mitigations.values()
            if request.mid is not None and record.mid < request.mid and scopes_overlap(record.scope, scope)
        )
        response = await self._exchange(request)
        result = {"mid": request.mid, **response_json(response)}
        if overlapped and response.code in ("2.01", "2.04"):
            result["replaced"] = overlapped
        return result

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        mid = _int(args, "mid", required=False)
        content = args.get("content")
        response = await self._exchange(self.core.status(mid, content=content))
        return response_json(response)

    async def withdraw(self, args: dict[str, Any]) -> dict[str, Any]:
        mid = _int(args, "mid")
        assert mid is not None
        return {"mid": mid, **response_json(await self._exchange(self.core.withdraw(mid)))}

    async def efficacy(self, args: dict[str, Any]) -> dict[str, Any]:
        mid = _int(args, "mid")
        assert mid is not None
        attack_status = args.get("attack-status")
        if not isinstance(attack_status, str):
            raise OperationError("missing argument 'attack-status'")
        return {"mid": mid, **response_json(await self._exchange(self.core.efficacy(mid, attack_status)))}

    async def config_get(self, args: dict[str, Any]) -> dict[str, Any]:
        current = bool(args.get("current-sid", False))
        return response_json(await self._exchange(self.core.config_get(current_sid=current)))

    async def config_set(self, args: dict[str, Any]) -> dict[str, Any]:
        idle, mitigating = args.get("idle"), args.get("mitigating")
        for name, value in (("idle", idle), ("mitigating", mitigating)):
            if value is not None and not isinstance(value, dict):
                raise OperationError(f"argument {name!r} must be an object of session parameters")
        request = self.core.config_set(idle=idle, mitigating=mitigating)
        return {"sid": request.sid, **response_json(await self._exchange(request))}

    async def config_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        return response_json(await self._exchange(self.core.config_delete()))
