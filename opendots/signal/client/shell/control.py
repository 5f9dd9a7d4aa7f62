"""The agent's local control API: newline-delimited JSON over a Unix socket.

Each request is one line holding a JSON object; each gets exactly one response line, in order, on the same
connection. A connection may carry any number of requests.

Request:   {"id": <any, echoed back>, "op": "<operation>", ...arguments}
Success:   {"id": ..., "ok": true, ...result}
Failure:   {"id": ..., "ok": false, "error": "<message>", "code": "<CoAP-like code>"}

Operations (results of server exchanges carry "code" (e.g. "2.01") and "body" (YANG-JSON or null), plus
"diagnostic" / "max-age" when present; a 4.xx/5.xx answer from the DOTS server is still "ok": true, the request
reached it):

  ping                                      -> {"pong": true}
  session                                   -> {"connected", "server", "transport", "cuid", "rtt", "config",
                                                "mitigating", "peer-hb-status"}
  mitigate  {"scope": {YANG scope entry}, "mid"?: int}      -> {"mid", "code", "body"}
  status    {"mid"?: int, "refresh"?: bool, "content"?: "c"|"n"|"a"}
            without refresh: the agent's latest knowledge from Observe notifications, {"mitigations": [...]};
            with refresh: a GET to the server, {"code", "body"}
  withdraw  {"mid": int}                                     -> {"mid", "code", "body"}
  efficacy  {"mid": int, "attack-status": "under-attack"|"attack-successfully-mitigated"} -> {"mid", "code", "body"}
  config-get    {"current-sid"?: bool}                       -> {"code", "body"}
  config-set    {"idle"?: {param: value}, "mitigating"?: {param: value}}  -> {"sid", "code", "body"}
                params: heartbeat_interval, missing_hb_allowed, probing_rate, max_retransmit, ack_timeout,
                ack_random_factor
  config-delete                                              -> {"code", "body"}
  telemetry-setup-get    {"tsid"?: int, "content"?: "c"|"n"|"a"}   -> {"code", "body"}         (RFC 9244 §7)
  telemetry-setup-set    {"entry": {"current-config"|"total-pipe-capacity"|"baseline": ...}} -> {"tsid", "code", "body"}
  telemetry-setup-delete {"kind"?: setup kind; absent: every setup, §7.4}                  -> {"tsid", "code", "body"}
  telemetry-report       {"entries": [pre-or-ongoing-mitigation entry], "tmid"?: int}      -> {"tmid", "code", "body"}
  telemetry-get          {"tmid"?: int, "content"?: "c"|"n"|"a"}  /  telemetry-delete {"tmid"?: int}
  telemetry-show         -> {"setup": {"code", "body"}, "reports": {"code", "body"}, "installed": {kind: {"tsid"}}}

Codes of local failures: "4.00" bad request/arguments, "5.03" no session with the DOTS server, "5.04" no answer.
The socket file is created with mode 0600: only its owner may drive the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from opendots.errors import RefusedError, UnavailableError

log = logging.getLogger(__name__)
Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_LINE = 1 << 20


class ControlError(RefusedError):
    """A failed operation; travels to the caller as {"ok": false, "error", "code"}."""

    def __init__(self, message: str, code: str = "4.00") -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return UnavailableError.exit_code if self.code in ("5.03", "5.04") else RefusedError.exit_code


class ControlServer:
    """Serves HANDLER(op, args) on a Unix socket at PATH."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            if not stat.S_ISSOCK(self.path.stat().st_mode):
                raise ControlError(f"{self.path} exists and is not a socket; refusing to replace it", "5.00")
            if _answers(self.path):
                raise ControlError(f"another process is already listening on {self.path}", "5.00")
            self.path.unlink()  # stale socket of an agent that died
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old_umask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _write(writer, {"id": None, "ok": False, "error": "request line too long", "code": "4.13"})
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await _write(writer, await self._answer(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return {"id": None, "ok": False, "error": f"not JSON: {error}", "code": "4.00"}
        if not isinstance(request, dict):
            return {"id": None, "ok": False, "error": "a request must be a JSON object", "code": "4.00"}
        request_id = request.pop("id", None)
        operation = request.pop("op", None)
        if not isinstance(operation, str):
            return {"id": request_id, "ok": False, "error": "missing 'op'", "code": "4.00"}
        try:
            result = await self.handler(operation, request)
        except ControlError as error:
            return {"id": request_id, "ok": False, "error": str(error), "code": error.code}
        except Exception as error:  # the agent must survive any single bad request
            log.exception("control operation %s failed", operation)
            return {"id": request_id, "ok": False, "error": f"internal error: {error!r}", "code": "5.00"}
        return {"id": request_id, "ok": True, **result}


async def _write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, default=str).encode() + b"\n")
    await writer.drain()


def _answers(path: Path, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class ControlClient:
    """Blocking Python API for a running agent: `ControlClient(path).mitigate(scope)`.

    Raises ControlError for {"ok": false} answers and ConnectionError when no agent listens.
    """

    def __init__(self, path: Path | str, timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._next_id = 0

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except OSError as error:
                sock.close()
                raise ConnectionError(f"nothing listens on {self.path}: {error}") from None
            self._socket = sock

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.connect()
        assert self._socket is not None
        self._next_id += 1
        self._socket.sendall(json.dumps({"id": self._next_id, "op": op, **args}).encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = self._socket.recv(65536)
            if not chunk:
                self.close()
                raise ConnectionError(f"{self.path}: the other side closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not answer.pop("ok", False):
            raise ControlError(answer.get("error", "unknown error"), answer.get("code", "5.00"))
        answer.pop("id", None)
        return answer

    # Convenience wrappers, one per operation.
    def ping(self) -> bool:
        return bool(self.call("ping").get("pong"))

    def session(self) -> dict[str, Any]:
        return self.call("session")

    def mitigate(self, scope: dict[str, Any], mid: int | None = None) -> dict[str, Any]:
        """SCOPE: a 'scope' entry in YANG-JSON (MitigationScope.to_yang), RFC 9133's
        'ietf-dots-signal-control:acl-list' included."""
        return self.call("mitigate", scope=scope, **({"mid": mid} if mid is not None else {}))

    def status(self, mid: int | None = None, *, refresh: bool = False, content: str | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"refresh": refresh}
        if mid is not None:
            args["mid"] = mid
        if content is not None:
            args["content"] = content
        return self.call("status", **args)

    def withdraw(self, mid: int) -> dict[str, Any]:
        return self.call("withdraw", mid=mid)

    def efficacy(self, mid: int, attack_status: str) -> dict[str, Any]:
        return self.call("efficacy", mid=mid, **{"attack-status": attack_status})

    def config_get(self, current_sid: bool = False) -> dict[str, Any]:
        return self.call("config-get", **{"current-sid": current_sid})

    def config_set(
        self, idle: dict[str, Any] | None = None, mitigating: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.call("config-set", idle=idle, mitigating=mitigating)

    def config_delete(self) -> dict[str, Any]:
        return self.call("config-delete")


def agent_answers(path: Path | str, timeout: float = 1.0) -> bool:
    """True if an agent listens on PATH and answers a ping."""
    try:
        with ControlClient(path, timeout=timeout) as client:
            return client.ping()
    except (ConnectionError, OSError, ControlError, ValueError):
        return False
