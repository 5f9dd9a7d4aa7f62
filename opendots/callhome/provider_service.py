"""`opendots callhome client run`: the Call Home DOTS client as a service, driven through a control socket.

The socket speaks the agent's protocol (opendots.signal.client.shell.control: one JSON object a line, one answer
each); the operations are the provider's:

  ping                                           -> {"pong": true}
  peers                                          -> {"peers": [{"name", "cuid", "prefixes", "connected",
                                                     "transport", "since"}]}
  mitigate {"peer", "scope": {"source-prefix": [..], "target-prefix": [..], "source-port"?: ["N[-M]"],
            "source-icmp-type"?: ["T[-U]"], "target-port"?: ["N[-M]"], "protocol"?: [int], "lifetime"?: s,
            "acl-list"?: [{"acl-name", "activation-type"?}]},
            "mid"?: int}                         -> {"peer", "mid", "code", "body", "diagnostic"}
  status   {"peer"?: name, "mid"?: int}          -> {"answers": [{"peer", "code", "body", "diagnostic"}]}
                                                    (every connected CPE when no peer is named)
  withdraw {"peer", "mid"}                       -> {"peer", "mid", "code", "body", "diagnostic"}
  redirect {"peer", "alt-ch-client": fqdn, "records"?: [ip], "ttl"?: s}  -> {"peer", "code", "diagnostic"}
                                                    (RFC 9066 §5.2.2: the CPE closes this session, dials that one)
  reload                                         -> {"cpes": {"added", "removed", "changed": [names]},
                                                     "restart_needed": [settings]}  (provider.toml read again,
                                                    as SIGHUP does: see ProviderService.reload)

A CPE's 4.xx/5.xx answer is still "ok": true (the request reached it). Local refusals: 4.00 (bad arguments, a
source outside what this provider may ask the CPE about, RFC 9066 §5.3.1), 4.04 (no such CPE), 5.03 (the CPE has
no session), 5.04 (no answer).

'mid' values only grow toward each CPE (RFC 9132 §4.4.1): the last one used is kept in `state_file`, written
before the request leaves, and a CPE that holds a higher one (a lost state file) moves the counter past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendots.callhome.provider import MITIGATION_SCOPE, Answer, CallHomeClient, CallHomeError
from opendots.callhome.provider_config import ProviderConfig
from opendots.errors import ConfigError
from opendots.signal.client.core.scope import AclActivation, ScopeError, acl_list_from_yang
from opendots.signal.client.shell.control import ControlError, ControlServer

log = logging.getLogger(__name__)

RESTART_SETTINGS = ("listen", "port", "transports", "control_socket", "state_file", "tls")
"""provider.toml settings a running provider does not change on reload: its sockets and credentials are bound."""


def parse_type_range(text: str) -> tuple[int, int]:
    """'T' or 'T-U', ICMP types 0-255 (RFC 9066 §5.3.1 source-icmp-type-range)."""
    lower, _, upper = str(text).partition("-")
    try:
        low, high = int(lower), int(upper or lower)
    except ValueError:
        raise ValueError(f"{text!r}: an ICMP type is T or T-U with numbers 0-255") from None
    if not 0 <= low <= high <= 255:
        raise ValueError(f"{text!r}: an ICMP type is T or T-U with 0 <= T <= U <= 255")
    return low, high


@dataclass
class MidCounter:
    """The last 'mid' used toward each CPE, durable in a JSON file (replaced atomically)."""

    path: Path
    last: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> MidCounter:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as error:
            raise ControlError(f"{path}: unreadable state file ({error})", "5.00") from None
        last = {str(k): int(v) for k, v in data.get("last-mid", {}).items()} if isinstance(data, dict) else {}
        return cls(path, last)

    def take(self, peer: str, at_least: int = 0) -> int:
        mid = max(self.last.get(peer, 0), at_least) + 1
        self.last[peer] = mid
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps({"last-mid": self.last}))
        os.replace(temporary, self.path)
        return mid


def _texts(scope: dict[str, Any], member: str) -> list[str]:
    value = scope.get(member) or []
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise ControlError(f"'{member}' must be a list of strings")
    return value


def _protocols(scope: dict[str, Any]) -> list[int]:
    value = scope.get("protocol") or []
    if not isinstance(value, list) or not all(type(n) is int and 0 <= n <= 255 for n in value):
        raise ControlError("'protocol' must be a list of protocol numbers 0-255")
    return value


def _acl_list(scope: dict[str, Any]) -> list[AclActivation]:
    """RFC 9133 'acl-list': the CPE's data-channel ACLs of this provider, and the activation types to give them."""
    try:
        return acl_list_from_yang(scope.get("acl-list") or [])
    except ScopeError as error:
        raise ControlError(str(error)) from None


def _answer(peer: str, answer: Answer, **extra: Any) -> dict[str, Any]:
    return {"peer": peer, **extra, "code": answer.code, "body": answer.body, "diagnostic": answer.diagnostic}


def _mids(answer: Answer) -> list[int]:
    entries = ((answer.body or {}).get(MITIGATION_SCOPE) or {}).get("scope") or []
    return [int(entry["mid"]) for entry in entries if isinstance(entry, dict) and "mid" in entry]


class ProviderService:
    """The CallHomeClient of CONFIG, its mid counter, and the handler of its control socket."""

    def __init__(
        self, config: ProviderConfig, client: CallHomeClient, timeout: float = 10.0, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.client = client
        self.timeout = timeout
        self.config_path = config_path
        """The provider.toml `reload` and SIGHUP read again (None: reload is refused)."""
        self.mids = MidCounter.load(config.state_file)

    def reload(self) -> dict[str, Any]:
        """Read provider.toml's [[cpes]] again. Only the CPEs change on a running provider: a change elsewhere
        (listen, port, transports, control socket, certificates) is named in `restart_needed` and not applied."""
        if self.config_path is None:
            raise ControlError("this provider was not started from a configuration file: nothing to reload")
        try:
            fresh = ProviderConfig.load(self.config_path)
        except ConfigError as error:  # a broken file changes nothing: the running list stays
            raise ControlError(f"{error} (nothing was changed)") from None
        changes = self.client.replace_peers(fresh.cpes)
        self.config.cpes = list(fresh.cpes)
        restart = [name for name in RESTART_SETTINGS if getattr(fresh, name) != getattr(self.config, name)]
        log.warning(
            "call home: provider.toml read again: CPEs added %s, removed %s, changed %s%s",
            changes["added"] or "none",
            changes["removed"] or "none",
            changes["changed"] or "none",
            f"; needs a restart to apply: {', '.join(restart)}" if restart else "",
        )
        return {"cpes": changes, "restart_needed": restart}

    async def _reload(self, _args: dict[str, Any]) -> dict[str, Any]:
        return self.reload()

    async def handle(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = {
            "ping": self._ping,
            "peers": self._peers,
            "mitigate": self._mitigate,
            "status": self._status,
            "withdraw": self._withdraw,
            "redirect": self._redirect,
            "reload": self._reload,
        }.get(operation)
        if handler is None:
            known = "ping, peers, mitigate, status, withdraw, redirect, reload"
            raise ControlError(f"unknown operation {operation!r} ({known})")
        try:
            return await handler(args)
        except CallHomeError as error:
            code = "5.03" if "no session" in str(error) else "4.04" if "no CPE named" in str(error) else "4.00"
            raise ControlError(str(error), code) from None
        except TimeoutError:
            raise ControlError("the CPE did not answer in time", "5.04") from None
        except (ValueError, TypeError) as error:
            raise ControlError(str(error)) from None

    async def _ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def _peers(self, _args: dict[str, Any]) -> dict[str, Any]:
        peers = []
        for peer in self.config.cpes:
            transport, since = self.client.session_details.get(peer.name, (None, None))
            peers.append(
                {
                    "name": peer.name,
                    "cuid": peer.cuid,
                    "prefixes": [str(prefix) for prefix in peer.prefixes],
                    "connected": peer.name in self.client.sessions,
                    "transport": transport,
                    "since": since,
                }
            )
        return {"peers": peers}

    def _peer_name(self, args: dict[str, Any]) -> str:
        name = args.get("peer")
        if not isinstance(name, str) or not name:
            raise ControlError("'peer' (the CPE's name in provider.toml) is required")
        if self.config.cpe(name) is None:
            raise ControlError(f"no CPE named {name!r} is configured", "4.04")
        return name

    @staticmethod
    def _mid(args: dict[str, Any], required: bool) -> int | None:
        mid = args.get("mid")
        if mid is None and not required:
            return None
        if isinstance(mid, bool) or not isinstance(mid, int) or not 0 <= mid <= 0xFFFFFFFF:
            raise ControlError(f"'mid' must be an integer 0-4294967295, not {mid!r}")
        return mid

    async def _mitigate(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._peer_name(args)
        scope = args.get("scope")
        if not isinstance(scope, dict):
            raise ControlError("'scope' must be an object")
        sources, targets = _texts(scope, "source-prefix"), _texts(scope, "target-prefix")
        if not sources:
            raise ControlError("a Call Home request names at least one source-prefix (RFC 9066 §5.3.1)")
        if not targets:
            raise ControlError("a Call Home request names at least one target-prefix (RFC 9066 §5.3.1)")
        lifetime = scope.get("lifetime", 3600)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or (lifetime < 1 and lifetime != -1):
            raise ControlError(f"'lifetime' must be a number of seconds or -1, not {lifetime!r}")
        request = {
            "source_prefixes": sources,
            "target_prefixes": targets,
            "source_port_ranges": _texts(scope, "source-port"),
            "source_icmp_type_ranges": [parse_type_range(text) for text in _texts(scope, "source-icmp-type")],
            "target_port_ranges": _texts(scope, "target-port"),
            "target_protocols": _protocols(scope),
            "lifetime": lifetime,
            "acl_list": _acl_list(scope),
        }
        self.client.check_sources(name, sources)  # before a mid is spent
        mid = self._mid(args, required=False)
        if mid is None:
            held = await self.client.status(name)
            mid = self.mids.take(name, max(_mids(held), default=0) if held.code == "2.05" else 0)
        answer = await self.client.mitigate(name, mid, **request)
        return _answer(name, answer, mid=mid)

    async def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        mid = self._mid(args, required=False)
        names = [self._peer_name(args)] if args.get("peer") is not None else list(self.client.sessions)
        answers = []
        for name in names:
            answers.append(_answer(name, await self.client.status(name, mid)))
        return {"answers": answers}

    async def _withdraw(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._peer_name(args)
        mid = self._mid(args, required=True)
        assert mid is not None
        return _answer(name, await self.client.withdraw(name, mid), mid=mid)

    async def _redirect(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._peer_name(args)
        alternate = args.get("alt-ch-client")
        if not isinstance(alternate, str) or not alternate:
            raise ControlError("'alt-ch-client' (the alternate Call Home DOTS client's FQDN) is required")
        records = args.get("records") or []
        if not isinstance(records, list) or not all(isinstance(text, str) for text in records):
            raise ControlError("'records' is a list of IP addresses")
        ttl = args.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**32 - 1):
            raise ControlError(f"'ttl' must be seconds 0-4294967295, not {ttl!r}")
        answer = await self.client.redirect(name, alternate, records, ttl)
        return _answer(name, answer)


async def run_provider(
    config: ProviderConfig, stop: asyncio.Event, started: Any = None, config_path: Path | None = None
) -> None:
    """Listen for CPEs and serve the control socket until STOP is set; STARTED() is called once both are up.
    With CONFIG_PATH, SIGHUP reads its [[cpes]] again (as the `reload` verb does)."""
    bind = [(address, config.port) for address in config.listen]
    client = await CallHomeClient.start(
        config.tls, config.cpes, bind=bind, dtls="dtls" in config.transports, tls="tls" in config.transports
    )
    control: ControlServer | None = None
    try:
        service = ProviderService(config, client, config_path=config_path)
        control = ControlServer(config.control_socket, service.handle)
        await control.start()
        if config_path is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_logged, service)
        if started is not None:
            started()
        await stop.wait()
    finally:
        if config_path is not None:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if control is not None:
            await control.close()
        with contextlib.suppress(Exception):
            await client.stop()


def _reload_logged(service: ProviderService) -> None:
    """SIGHUP: as `reload`, with a broken file logged instead of answered."""
    try:
        service.reload()
    except ControlError as error:
        log.error("call home: SIGHUP: %s", error)
