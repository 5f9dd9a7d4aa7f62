"""FastNetMon's notify script as a DOTS client: a detected attack becomes a DOTS mitigation request.

FastNetMon runs its notify script as `SCRIPT IP DIRECTION PPS ACTION` (ACTION: ban, unban, attack_details; for ban
the attack details arrive on stdin). `ban` asks for mitigation of IP/32 (IPv4) or IP/128 (IPv6) through the DOTS
client agent's control socket (or, with no agent running, a one-shot signal channel session); `unban` withdraws
the mitigation that ban created. The IP → mid mapping lives in `fastnetmon-mitigations.json` next to the client
configuration, so an unban finds what an earlier ban created, whichever process sent it.

FastNetMon configuration (/etc/fastnetmon.conf, Debian 12's FastNetMon 1.2.4; newer releases also want
`notify_script_enabled = on` and `notify_script_pass_details = on`):

    enable_ban = on
    ban_time = 1900                       # FastNetMon calls unban after this, if the attack is over
    unban_only_if_attack_finished = on
    notify_script_path = /usr/local/bin/opendots-fastnetmon
    disable_usage_report = on

and /usr/local/bin/opendots-fastnetmon (executable; FastNetMon passes no options of its own):

    #!/bin/sh
    exec /opt/odvenv/bin/python -m opendots fastnetmon-hook --config /etc/opendots/client.toml \\
        --lifetime 3600 --log-file /var/log/opendots-fastnetmon.log "$@"

Exit status: 0 done (or nothing to do), 64 bad arguments, 65 the DOTS server refused the request, 69 neither the
agent nor the server could be reached in time. Never more than --timeout seconds (default 10): FastNetMon waits
for its script, and a hung script must never stall detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import select
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from opendots.errors import ConfigError, OpenDotsError

log = logging.getLogger("opendots.fastnetmon")

EXIT_OK = 0
EXIT_USAGE = 64  # sysexits EX_USAGE
EXIT_REFUSED = 65  # EX_DATAERR: the DOTS server answered, but not with success
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no agent, no server, or no answer in time
ACTIONS = ("ban", "unban", "attack_details")
STATE_FILE = "fastnetmon-mitigations.json"
MAX_DETAILS = 1 << 20
STDIN_WAIT = 2.0
DETAILS_WAIT = 5.0  # seconds attack_details waits for the ban of the same IP to be recorded


class HookError(OpenDotsError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Notification:
    """One notify-script call of FastNetMon."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    direction: str
    pps: int
    action: str

    @classmethod
    def parse(cls, ip: str, direction: str, pps: str, action: str) -> Notification:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise HookError(f"not an IP address: {ip!r}", EXIT_USAGE) from None
        if action not in ACTIONS:
            raise HookError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}", EXIT_USAGE)
        try:
            rate = int(float(pps))
        except ValueError:
            raise HookError(f"pps must be a number, not {pps!r}", EXIT_USAGE) from None
        return cls(address, direction, rate, action)

    @property
    def target_prefix(self) -> str:
        return f"{self.address}/{self.address.max_prefixlen}"


class MitigationMap:
    """IP → mid of the mitigations this hook created, in a JSON file guarded by a lock file.

    FastNetMon may run several notify scripts at once (one per attacked host): every read-modify-write holds the
    lock, and the file is replaced atomically so a crash never leaves half a mapping.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self, timeout: float) -> Iterator[dict[str, Any]]:
        """The mapping, to read and modify; written back on a clean exit."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise HookError(f"{lock_path} stayed locked for {timeout} s", EXIT_UNAVAILABLE) from None
                    time.sleep(0.02)
            mapping = self.read()
            before = dict(mapping)
            yield mapping
            if mapping != before:
                temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps(mapping, indent=1, sort_keys=True))
                os.replace(temporary, self.path)

    def read(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as problem:
            log.warning("ignoring unreadable %s: %s", self.path, problem)
            return {}
        return loaded if isinstance(loaded, dict) else {}


def read_attack_details(stream: BinaryIO | None, wait: float = STDIN_WAIT) -> str:
    """What FastNetMon writes on stdin for ban, read until EOF but never longer than WAIT seconds."""
    if stream is None or stream.isatty():
        return ""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + wait
    descriptor = stream.fileno()
    while size < MAX_DETAILS:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([descriptor], [], [], remaining)
        if not readable:
            break
        chunk = os.read(descriptor, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode(errors="replace")


class DotsCalls:
    """Operations of the client control API, through the agent if one answers, else one-shot; all bounded."""

    def __init__(self, config_path: Path, timeout: float) -> None:
        from opendots.config import ClientConfig
        from opendots.signal.client.shell.settings import AgentSettings

        try:
            self.config = ClientConfig.load(config_path)
            self.settings = AgentSettings.from_config(self.config)
        except ConfigError as problem:
            raise HookError(str(problem), EXIT_USAGE) from None
        self.deadline = time.monotonic() + timeout

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise HookError("out of time before the DOTS server answered", EXIT_UNAVAILABLE)
        return left

    def call(self, operation: str, **args: Any) -> tuple[dict[str, Any], str]:
        """(result, "agent" | "one-shot"); raises HookError when nothing answers in time."""
        from opendots.signal.client.shell.control import ControlClient, ControlError, agent_answers

        try:
            if agent_answers(self.config.control_socket, timeout=min(1.0, self.remaining())):
                with ControlClient(self.config.control_socket, timeout=self.remaining()) as control:
                    return control.call(operation, **args), "agent"
            return self._one_shot(operation, args), "one-shot"
        except ControlError as problem:
            raise HookError(f"{operation}: {problem} ({problem.code})", EXIT_UNAVAILABLE) from None
        except (OSError, ConnectionError, TimeoutError) as problem:
            raise HookError(f"{operation}: {problem or type(problem).__name__}", EXIT_UNAVAILABLE) from None

    def _one_shot(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import replace

        from opendots.signal.client.shell.oneshot import run_once

        budget = self.remaining()
        settings = replace(
            self.settings,
            connect_timeout=min(self.settings.connect_timeout, budget),
            request_timeout=min(self.settings.request_timeout, budget),
        )

        async def bounded() -> dict[str, Any]:
            return await asyncio.wait_for(run_once(self.config, settings, operation, args), budget)

        try:
            return asyncio.run(bounded())
        except TimeoutError:
            raise HookError(f"{operation}: no answer within {budget:.1f} s", EXIT_UNAVAILABLE) from None
        except ConfigError as problem:  # a credential client.toml names: as a bad client.toml is (above)
            raise HookError(f"{operation}: {problem}", EXIT_USAGE) from None
        except OpenDotsError as problem:  # no server reached, a failed handshake, a body it cannot send
            raise HookError(f"{operation}: {problem}", EXIT_UNAVAILABLE) from None


def _succeeded(result: dict[str, Any]) -> bool:
    return str(result.get("code", "")).startswith("2.")


def _refusal(operation: str, result: dict[str, Any]) -> HookError:
    detail = result.get("diagnostic") or ""
    return HookError(f"{operation}: the DOTS server answered {result.get('code')} {detail}".rstrip(), EXIT_REFUSED)


def handle(notification: Notification, config_path: Path, *, lifetime: int, timeout: float, details: str = "") -> int:
    """Act on one FastNetMon notification; returns the exit status (HookError carries the failing ones)."""
    key = str(notification.address)
    if notification.action == "attack_details":
        log.info("attack details for %s (%s, %d pps): %s", key, notification.direction, notification.pps, details)
        return _details_after_ban(notification, config_path, timeout, details)
    if notification.direction == "outgoing":
        # Our own host sends the flood: mitigating traffic *to* it would not help anyone.
        log.warning("%s %s: outgoing attack, no DOTS mitigation requested", notification.action, key)
        return EXIT_OK
    calls = DotsCalls(config_path, timeout)
    mapping_file = MitigationMap(Path(config_path).resolve().parent / STATE_FILE)
    with mapping_file.locked(calls.remaining()) as mapping:
        known = mapping.get(key)
        if notification.action == "ban":
            tmid = _report_telemetry(calls, notification, details)  # RFC 9244 §8.2: before the request it explains
            scope = {"target-prefix": [notification.target_prefix], "lifetime": lifetime}
            args: dict[str, Any] = {"scope": scope}
            if known is not None:
                args["mid"] = int(known["mid"])  # the same attack again: refresh the same mitigation
            result, path = calls.call("mitigate", **args)
            if not _succeeded(result):
                raise _refusal("mitigate", result)
            mapping[key] = {"mid": int(result["mid"]), "pps": notification.pps, "since": int(time.time())}
            if tmid is not None:
                mapping[key]["tmid"] = tmid
            summary = details.strip().splitlines()[0] if details.strip() else "no details"
            log.info(
                "ban %s (%s, %d pps): mitigation mid %s %s via %s (%s)",
                key,
                notification.direction,
                notification.pps,
                result["mid"],
                result["code"],
                path,
                summary,
            )
            return EXIT_OK
        if known is None:
            log.info("unban %s: no mitigation of ours for it, nothing to withdraw", key)
            return EXIT_OK
        result, path = calls.call("withdraw", mid=int(known["mid"]))
        if not _succeeded(result):
            raise _refusal("withdraw", result)
        del mapping[key]
        log.info("unban %s: mitigation mid %s withdrawn (%s) via %s", key, known["mid"], result["code"], path)
        if "tmid" in known:
            _delete_telemetry(calls, key, int(known["tmid"]))
        return EXIT_OK


def _details_after_ban(notification: Notification, config_path: Path, timeout: float, details: str) -> int:
    """FastNetMon sends the sampled packets in a later `attack_details` call, not with `ban`: for an attack this hook
    banned, report again with the top talkers they name. The newer tmid replaces the ban's report at the server
    (its target overlaps, RFC 9244 §8.2). Always EXIT_OK: the mitigation is in place whatever happens here."""
    key = str(notification.address)
    mapping_file = MitigationMap(Path(config_path).resolve().parent / STATE_FILE)
    if notification.direction == "outgoing":
        return EXIT_OK
    # FastNetMon runs both scripts at once: attack_details can start while the ban's hook is still asking for the
    # mitigation (it records the IP only once answered). Wait for it a little, bounded; no ban of ours: nothing.
    deadline = time.monotonic() + min(DETAILS_WAIT, timeout / 2)
    while key not in mapping_file.read():
        if time.monotonic() >= deadline:
            return EXIT_OK
        time.sleep(0.05)
    try:
        calls = DotsCalls(config_path, timeout)
        with mapping_file.locked(calls.remaining()) as mapping:
            if key not in mapping:  # unbanned meanwhile
                return EXIT_OK
            tmid = _report_telemetry(calls, notification, details)
            if tmid is not None:
                mapping[key] = {**mapping[key], "tmid": tmid}
    except HookError as problem:
        log.warning("attack details for %s: no telemetry sent: %s", key, problem)
    return EXIT_OK


def _report_telemetry(calls: DotsCalls, notification: Notification, details: str) -> int | None:
    """Send the attack as pre-or-ongoing-mitigation telemetry (target, rates, top talkers); its tmid, or None when
    the server refused it: a refused report is logged and the mitigation request still goes. An unreachable server
    ends the call here (HookError), as the mitigation request could not go either."""
    from opendots.integrations.fastnetmon_telemetry import parse_details, telemetry_entry
    from opendots.signal.client.core.telemetry_bodies import TelemetryError

    vendor_id = calls.config.telemetry.get("vendor_id", 0)
    parsed = parse_details(details, notification.address)
    try:
        entry = telemetry_entry(
            parsed, notification.target_prefix, notification.pps, vendor_id=vendor_id, start_time=int(time.time())
        )
    except TelemetryError as problem:  # e.g. a pps beyond gauge64: the mitigation matters more than the report
        log.warning("%s %s: no telemetry sent: %s", notification.action, notification.address, problem)
        return None
    result, path = calls.call("telemetry-report", entries=[entry])
    if not _succeeded(result):
        log.warning("%s %s: %s", notification.action, notification.address, _refusal("telemetry-report", result))
        return None
    talkers = len(entry.get("attack-detail", [{}])[0].get("top-talker", {}).get("talker", []))
    log.info("%s %s: telemetry tmid %s %s via %s (%d top talkers)", notification.action, notification.address,
             result["tmid"], result["code"], path, talkers)  # fmt: skip
    return int(result["tmid"])


def _delete_telemetry(calls: DotsCalls, key: str, tmid: int) -> None:
    """The attack is over: its telemetry goes too (best effort: the withdrawal already succeeded)."""
    try:
        result, _ = calls.call("telemetry-delete", tmid=tmid)
    except HookError as problem:
        log.warning("unban %s: telemetry tmid %d not deleted: %s", key, tmid, problem)
        return
    log.info("unban %s: telemetry tmid %d deleted (%s)", key, tmid, result.get("code"))


def configure_logging(log_file: Path | None) -> None:
    """One line per call, to LOG_FILE if given (FastNetMon drops a script's output), else to stderr."""
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s opendots-fastnetmon[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run_hook(
    argv: list[str],
    config_path: Path,
    *,
    lifetime: int,
    timeout: float,
    stdin: BinaryIO | None,
) -> int:
    """The whole notify-script call: parse, read details (ban), act; every failure is logged and mapped."""
    try:
        if len(argv) != 4:
            raise HookError(f"expected IP DIRECTION PPS ACTION, got {len(argv)} arguments: {argv}", EXIT_USAGE)
        notification = Notification.parse(*argv)
        details = read_attack_details(stdin) if notification.action in ("ban", "attack_details") else ""
        return handle(notification, config_path, lifetime=lifetime, timeout=timeout, details=details)
    except HookError as problem:
        log.error("%s: %s", " ".join(argv), problem)
        return problem.exit_code


def write_notify_script(
    path: Path, config_path: Path, *, lifetime: int = 3600, timeout: float = 10.0, log_file: Path | None = None
) -> Path:
    """Write the executable wrapper FastNetMon's notify_script_path points at (it passes no options itself).

    It runs this very interpreter and this very copy of OpenDOTS, so it works from a source tree too.
    """
    root = Path(__file__).resolve().parents[2]
    options = [f"--config '{Path(config_path).resolve()}'", f"--lifetime {lifetime}", f"--timeout {timeout}"]
    if log_file is not None:
        options.append(f"--log-file '{Path(log_file).resolve()}'")
    path.write_text(
        "#!/bin/sh\n"
        "# FastNetMon notify script: IP DIRECTION PPS ban|unban|attack_details (details on stdin)\n"
        f"PYTHONPATH='{root}'${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
        f"exec '{sys.executable}' -m opendots.cli.fastnetmon {' '.join(options)} \"$@\"\n"
    )
    path.chmod(0o755)
    return path
