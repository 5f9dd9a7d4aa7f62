"""The test tree's layout (README, Layout): tests/unit and tests/integration mirror the opendots packages, unit tests
open no socket and start no process, shared code lives in tests/helpers and no test module imports another."""

from __future__ import annotations

import ast
import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.boundary import UnitTestBoundaryError, refuse_sockets_and_processes

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "opendots"
MIRRORED = ("unit", "integration")

# Modules whose import in a unit test means a socket or a process (the runtime guard of tests/helpers/boundary.py
# refuses the calls themselves; this names the mistake before anything runs).
NETWORK_OR_PROCESS_MODULES = {
    "socket",
    "ssl",
    "subprocess",
    "multiprocessing",
    "aiohttp",
    "http.client",
    "urllib.request",
}
# Test-support names that only make sense with a socket or a process.
NETWORK_OR_PROCESS_NAMES = {
    "free_port",
    "libcoap_port_pair",
    "require_binary",
    "start_signal_server",
    "start_data_server",
    "start_metrics_endpoint",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "create_datagram_endpoint",
    "open_connection",
    "open_unix_connection",
    "start_unix_server",
}


def _modules(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _helper_modules_used(path: Path, seen: set[Path]) -> set[Path]:
    """The tests.helpers modules PATH imports, and theirs (what runs inside a unit test besides the test itself)."""
    found: set[Path] = set()
    for name in _imports(path):
        if not name.startswith("tests.helpers"):
            continue
        parts = name.split(".")
        for length in range(len(parts), 1, -1):
            candidate = TESTS.parent.joinpath(*parts[:length])
            module = (
                candidate.with_suffix(".py") if candidate.with_suffix(".py").exists() else candidate / "__init__.py"
            )
            if module.exists():
                if module not in seen:
                    seen.add(module)
                    found |= {module} | _helper_modules_used(module, seen)
                break
    return found


@pytest.mark.parametrize("suite", MIRRORED)
def test_every_folder_of_unit_and_integration_mirrors_an_opendots_package(suite: str) -> None:
    root = TESTS / suite
    folders = {path.parent for path in _modules(root)} - {root}
    strays = [
        str(f.relative_to(TESTS)) for f in folders if not (PACKAGE / f.relative_to(root) / "__init__.py").exists()
    ]
    assert strays == [], f"these folders match no package under opendots/: {strays}"
    missing_init = [str(f.relative_to(TESTS)) for f in folders if not (f / "__init__.py").exists()]
    assert missing_init == [], f"each test folder is a package (same basenames in two folders): {missing_init}"


@pytest.mark.parametrize("suite", MIRRORED)
def test_a_test_module_at_the_top_of_unit_or_integration_mirrors_a_top_level_module(suite: str) -> None:
    """tests/unit/test_config.py is about opendots/config.py; anything else belongs in its package's folder."""
    flat = [path for path in (TESTS / suite).glob("test_*.py")]
    strays = [path.name for path in flat if not (PACKAGE / path.name.removeprefix("test_")).exists()]
    assert strays == [], f"move these into the folder of the package they test: {strays}"


def test_no_unit_test_or_helper_it_uses_imports_a_socket_or_process_module_or_names_a_server() -> None:
    offenders = []
    unit_modules = _modules(TESTS / "unit")
    helpers: set[Path] = set()
    for module in unit_modules:
        helpers |= _helper_modules_used(module, set())
    for module in unit_modules + sorted(helpers):
        if module == TESTS / "helpers" / "boundary.py":
            continue  # the guard itself patches socket and subprocess
        imported = _imports(module)
        bad = {
            name
            for name in imported
            if name in NETWORK_OR_PROCESS_MODULES or name.split(".")[-1] in NETWORK_OR_PROCESS_NAMES
        }
        used = {node.id for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.Attribute)}
        bad |= used & NETWORK_OR_PROCESS_NAMES
        if bad:
            offenders.append(f"{module.relative_to(TESTS)}: {sorted(bad)}")
    assert offenders == [], "unit tests open no socket and start no process; move these to tests/integration: " + str(
        offenders
    )


def test_no_test_module_imports_another_and_helpers_hold_no_tests() -> None:
    offenders = []
    for module in _modules(TESTS):
        for name in _imports(module):
            if name.startswith("tests.") and any(part.startswith("test_") for part in name.split(".")):
                offenders.append(f"{module.relative_to(TESTS)} imports {name}")
    for module in _modules(TESTS / "helpers"):
        assert not module.name.startswith("test_"), module
        tree = ast.parse(module.read_text())
        tests = [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
        ]
        assert tests == [], f"{module}: tests in a helper module are not collected: {tests}"
    assert offenders == [], "shared code goes to tests/helpers (or a conftest.py): " + str(offenders)


async def test_the_unit_guard_refuses_sockets_and_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_sockets_and_processes(monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(UnitTestBoundaryError):
        udp.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(UnitTestBoundaryError):
        tcp.connect(("127.0.0.1", 9))
    with pytest.raises(UnitTestBoundaryError):
        await asyncio.get_running_loop().create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    with pytest.raises(UnitTestBoundaryError):
        await asyncio.open_connection("127.0.0.1", 9)
    with pytest.raises(UnitTestBoundaryError):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(UnitTestBoundaryError):
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    left, right = socket.socketpair()  # what an event loop makes for itself stays allowed
    left.close()
    right.close()
