"""Issue 20: `opendots --help` and the FastNetMon hook's path to the client agent import only what they use.

Counted, not timed: the packages a child process imported. Every FastNetMon `ban` is one process, and before the
verbs were imported lazily each paid for aiohttp, aiocoap, pyOpenSSL and the YANG model (~0.4-0.6 s) before
sending anything (bench/cli_startup.py measures the time)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli_startup import HEAVY, imported_by, server_and_agent


def test_opendots_help_lists_every_verb_without_importing_the_heavy_packages(tmp_path: Path) -> None:
    imported, process = imported_by(tmp_path / "modules.json", "--help")
    assert process.returncode == 0, process.stderr
    assert b"fastnetmon-hook  Called by FastNetMon" in process.stdout and b"server " in process.stdout
    assert sorted(set(HEAVY) & imported) == []
    assert "asyncio" not in imported  # ~20 ms of its own: only the verbs that run an event loop import it


def test_a_verbs_own_help_still_imports_its_module(tmp_path: Path) -> None:
    """The counter-check: the probe does see a verb's imports (the data channel's client is aiohttp)."""
    imported, process = imported_by(tmp_path / "modules.json", "data", "--help")
    assert process.returncode == 0, process.stderr
    assert b"RFC 8783" in process.stdout
    assert "aiohttp" in imported


def test_a_fastnetmon_ban_through_the_agent_imports_none_of_the_heavy_packages(tmp_path: Path) -> None:
    with server_and_agent(tmp_path) as client_toml:
        log = tmp_path / "hook.log"
        hook = ("fastnetmon-hook", "-c", str(client_toml), "--log-file", str(log))
        imported, process = imported_by(tmp_path / "ban.json", *hook, "203.0.113.5", "incoming", "50000", "ban")
        assert process.returncode == 0, (process.stderr, log.read_text())
        assert "via agent" in log.read_text() and "mitigation mid" in log.read_text()
        assert sorted(set(HEAVY) & imported) == []
        imported, process = imported_by(tmp_path / "unban.json", *hook, "203.0.113.5", "incoming", "0", "unban")
        assert process.returncode == 0, (process.stderr, log.read_text())
        assert "withdrawn" in log.read_text()
        assert sorted(set(HEAVY) & imported) == []
