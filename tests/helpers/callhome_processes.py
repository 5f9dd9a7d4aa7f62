"""RFC 9066 Call Home as an operator runs it: `opendots callhome client run` and `opendots callhome server` as child
processes of this checkout, on the configuration pair `opendots certs init --call-home` writes (on a free port)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from click.testing import Result

from opendots.callhome.provider_config import ProviderConfig
from opendots.config import ServerConfig
from opendots.pki.setup import init_call_home, init_pki
from tests.conftest import free_port
from tests.helpers import REPOSITORY
from tests.helpers.cli import invoke

PROVIDER_ONLY = "198.51.100.0/24"
"""A prefix provider.toml lets the provider ask about but cpe.toml does not let the CPE be asked about: what the
CPE itself must refuse (RFC 9066 §5.3.1)."""


@dataclass
class CallHomePair:
    directory: Path
    cpe_toml: Path
    provider_toml: Path
    transport: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        """`opendots ARGS` with its stderr in DIRECTORY/LOG."""
        with (self.directory / log).open("ab") as stream:
            process = subprocess.Popen(
                [sys.executable, "-m", "opendots", *args],
                cwd=REPOSITORY,
                env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
                stdout=subprocess.DEVNULL,
                stderr=stream,
            )
        self.processes.append(process)
        return process

    def provider(self) -> subprocess.Popen[bytes]:
        process = self.start("callhome", "client", "run", "-c", str(self.provider_toml), log="provider.log")
        self.wait_log("provider.log", "DOTS Call Home client listening")
        return process

    def cpe(self, config: Path | None = None, log: str = "cpe.log") -> subprocess.Popen[bytes]:
        return self.start("callhome", "server", "-c", str(config or self.cpe_toml), log=log)

    def log(self, name: str) -> str:
        path = self.directory / name
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, text: str, timeout: float = 30.0, count: int = 1) -> None:
        wait_until(lambda: self.log(name).count(text) >= count, timeout, f"{text!r} in {name}:\n{self.log(name)}")

    def client(self, verb: str, *args: str) -> Result:
        """`opendots callhome client VERB -c provider.toml ARGS`, in-process."""
        return invoke("callhome", "client", verb, "-c", str(self.provider_toml), *args)

    def peers(self) -> list[dict[str, Any]]:
        result = self.client("peers", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def wait_connected(self, timeout: float = 30.0, *, since: float | None = None) -> dict[str, Any]:
        """The peer `home` once it has a session (one that came up after SINCE, when given)."""
        found: dict[str, Any] = {}

        def connected() -> bool:
            home = next(peer for peer in self.peers() if peer["name"] == "home")
            found.update(home)
            return home["connected"] and (since is None or home["since"] > since)

        wait_until(connected, timeout, f"no session from the CPE: {found}\n{self.log('cpe.log')}")
        return found

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def call_home_pair(directory: Path, transport: str) -> Iterator[CallHomePair]:
    """The pair of `certs init --call-home` on a free port over TRANSPORT; the provider may also ask about
    PROVIDER_ONLY (the CPE may not be asked about it). Stops every process it started."""
    init_pki(directory)
    cpe_toml, provider_toml = init_call_home(directory, port=free_port())
    cpe = ServerConfig.load(cpe_toml)
    cpe.providers = [{**cpe.providers[0], "transport": transport}]
    cpe.full_collection_interval = 0
    cpe.signal = {"active_but_terminating": 1}
    cpe.save(cpe_toml)
    provider = ProviderConfig.load(provider_toml)
    home = provider.cpes[0]
    provider.cpes = [replace(home, prefixes=(*home.prefixes, ipaddress.ip_network(PROVIDER_ONLY)))]
    provider.save(provider_toml)
    pair = CallHomePair(directory, cpe_toml, provider_toml, transport)
    try:
        yield pair
    finally:
        pair.stop()
