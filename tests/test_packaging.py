"""What an operator installs besides the package: the systemd units (validated by systemd itself, least privilege),
the LICENSE pyproject.toml names, shell completion as the README documents it, and `./run` leaving no test-only
daemon (BGP speakers, FastNetMon) running as a system service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "packaging" / "systemd"


def _settings(unit: Path) -> dict[str, str]:
    lines = [line.strip() for line in unit.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _opendots() -> str:
    installed = Path(sys.executable).parent / "opendots"
    if not installed.exists():
        pytest.skip("the opendots console script is not installed next to this Python (pip install -e .)")
    return str(installed)


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    # verify checks that ExecStart exists: point it at this checkout's console script, keep everything else.
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace("/opt/opendots/.venv/bin/opendots", _opendots())
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(path) for path in tmp_path.glob("*.service"))
    assert len(units) == 5
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


# unit -> (capabilities, the opendots verb it runs): only what changes the host's network (nftables, conntrack) may
# hold CAP_NET_ADMIN; the agents that only speak DOTS hold nothing.
ROLES = {
    "opendots-server.service": ("CAP_NET_ADMIN", ["server", "--config"]),
    "opendots-client.service": ("", ["client", "run"]),
    "opendots-gateway.service": ("", ["gateway", "--config"]),
    "opendots-callhome-provider.service": ("", ["callhome", "client", "run"]),
    "opendots-callhome-cpe.service": ("CAP_NET_ADMIN", ["callhome", "server"]),
}


def test_every_role_runs_least_privileged_and_has_a_unit():
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted(ROLES)
    for name, (capabilities, verb) in ROLES.items():
        unit = _settings(UNITS / name)
        assert unit["CapabilityBoundingSet"] == unit["AmbientCapabilities"] == capabilities, name
        assert unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict", name
        assert unit["User"] == "opendots" and unit["ProtectHome"] == "yes", name
        assert unit["ExecStart"].split()[1 : 1 + len(verb)] == verb, name
        assert "--log-format json" in unit["ExecStart"], name


def test_no_two_units_share_a_state_or_runtime_directory():
    for key in ("StateDirectory", "RuntimeDirectory"):
        directories = [_settings(UNITS / name)[key] for name in ROLES]
        assert len(set(directories)) == len(directories), (key, directories)


def test_the_units_start_commands_the_cli_accepts(tmp_path: Path):
    for name in ROLES:
        argv = _settings(UNITS / name)["ExecStart"].split()[1:]
        result = subprocess.run([_opendots(), *argv, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "Usage:" in result.stdout, (name, result.stderr)


def test_the_license_file_is_the_one_pyproject_names():
    license_name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert license_name == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text.splitlines()[1] and "Version 2.0, January 2004" in text


def test_shell_completion_works_as_the_readme_says():
    assert "_OPENDOTS_COMPLETE=bash_source opendots" in (ROOT / "README.md").read_text()
    env = {**os.environ, "_OPENDOTS_COMPLETE": "bash_source", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([_opendots()], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "_opendots_completion" in result.stdout, result.stderr
    words = {**env, "_OPENDOTS_COMPLETE": "bash_complete", "COMP_WORDS": "opendots adm", "COMP_CWORD": "1"}
    completed = subprocess.run([_opendots()], env=words, capture_output=True, text=True, timeout=60)
    assert "plain,admin" in completed.stdout.splitlines()


def _quiet(tmp_path: Path, systemd_dir: Path, *installed: str) -> list[str]:
    """Run ./run's quiet_test_services with a systemctl that records its calls (systemd is not PID 1 in the test
    environment: the test checks what ./run asks of it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    calls.write_text("")
    for name, body in (("systemctl", f'echo "$*" >> {calls}'), ("sudo", 'exec "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = f"source ./run && quiet_test_services {' '.join(installed)}"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SYSTEMD_RUN_DIR": str(systemd_dir)}
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()


def test_run_stops_and_masks_the_test_only_daemons_it_installed_on_a_systemd_host(tmp_path: Path):
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    assert _quiet(tmp_path, systemd, "curl", "bird2", "gobgpd", "exabgp", "fastnetmon") == [
        "disable --now --quiet bird.service gobgpd.service exabgp.service fastnetmon.service",
        "mask --quiet bird.service gobgpd.service exabgp.service fastnetmon.service",
    ]
    assert _quiet(tmp_path, systemd, "curl", "nftables") == []  # nothing of theirs runs as a daemon
    assert _quiet(tmp_path, tmp_path / "no-systemd", "bird2") == []  # a container without systemd: nothing to do
