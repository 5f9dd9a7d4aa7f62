"""The client's RFC 9244 verbs (telemetry setup, pre-or-ongoing-mitigation reports, the combined view), beside
ClientOperations and dispatched by it: JSON-ready arguments and results, for the control socket and one-shot runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opendots.signal.client.core.requests import DotsRequest, DotsResponse
from opendots.signal.client.core.telemetry_bodies import TelemetryError

if TYPE_CHECKING:
    from opendots.signal.client.shell.operations import ClientOperations

TELEMETRY_OPERATIONS = (
    "telemetry-setup-get",
    "telemetry-setup-set",
    "telemetry-setup-delete",
    "telemetry-report",
    "telemetry-get",
    "telemetry-delete",
    "telemetry-show",
)
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class TelemetryOperations:
    def __init__(self, operations: ClientOperations) -> None:
        self.operations = operations
        self.telemetry = operations.core.telemetry

    def handlers(self) -> dict[str, Handler]:
        return {
            "telemetry-setup-get": self.setup_get,
            "telemetry-setup-set": self.setup_set,
            "telemetry-setup-delete": self.setup_delete,
            "telemetry-report": self.report,
            "telemetry-get": self.reports_get,
            "telemetry-delete": self.reports_delete,
            "telemetry-show": self.show,
        }

    async def _exchange(self, request: DotsRequest) -> DotsResponse:
        return await self.operations._exchange(request)

    @staticmethod
    def _result(response: DotsResponse) -> dict[str, Any]:
        from opendots.signal.client.shell.operations import response_json  # that module imports this one

        return response_json(response)

    # Bad arguments raise TelemetryError, a ScopeError: ClientOperations.dispatch answers them with 4.00.
    @staticmethod
    def _int(args: dict[str, Any], name: str) -> int | None:
        value = args.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TelemetryError(f"argument {name!r} must be an integer")
        return value

    @staticmethod
    def _dict(args: dict[str, Any], name: str) -> dict[str, Any]:
        value = args.get(name)
        if not isinstance(value, dict):
            raise TelemetryError(f"argument {name!r} must be an object (YANG-JSON)")
        return value

    async def setup_get(self, args: dict[str, Any]) -> dict[str, Any]:
        request = self.telemetry.setup_get(self._int(args, "tsid"), content=args.get("content"))
        return self._result(await self._exchange(request))

    async def setup_set(self, args: dict[str, Any]) -> dict[str, Any]:
        request = self.telemetry.setup_set(self._dict(args, "entry"))
        return {"tsid": request.tsid, **self._result(await self._exchange(request))}

    async def setup_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        request = self.telemetry.setup_delete(args.get("kind"))
        return {"tsid": request.tsid, **self._result(await self._exchange(request))}

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args.get("entries")
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise TelemetryError("argument 'entries' must be a list of pre-or-ongoing-mitigation entries")
        request = self.telemetry.report(entries, self._int(args, "tmid"))
        return {"tmid": request.tmid, **self._result(await self._exchange(request))}

    async def reports_get(self, args: dict[str, Any]) -> dict[str, Any]:
        request = self.telemetry.reports_get(self._int(args, "tmid"), content=args.get("content"))
        return self._result(await self._exchange(request))

    async def reports_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._result(await self._exchange(self.telemetry.reports_delete(self._int(args, "tmid"))))

    async def show(self, args: dict[str, Any]) -> dict[str, Any]:
        """What the server holds for this client: its tm-setup (acceptable values and installed setups) and its
        pre-or-ongoing-mitigation telemetry (a 4.04 there: none)."""
        setup = self._result(await self._exchange(self.telemetry.setup_get()))
        reports = self._result(await self._exchange(self.telemetry.reports_get()))
        return {"setup": setup, "reports": reports, "installed": self._installed()}

    def _installed(self) -> dict[str, Any]:
        return {kind: {"tsid": tsid} for kind, (tsid, _) in self.telemetry.setups.items()}
