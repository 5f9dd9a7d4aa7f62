"""FastNetMon in the lab: its configuration for the router namespace (AF_PACKET on the attacker-facing interface,
pps threshold 1000, our notify hook), shared by the e2e tests that run the real detector."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab import Lab
from opendots.lab.processes import wait_for

FASTNETMON_CONF = """
logging_level = info
disable_usage_report = on
enable_ban = on
process_incoming_traffic = on
process_outgoing_traffic = off
ban_details_records_count = {records}
ban_time = 2
unban_only_if_attack_finished = on
networks_list_path = {directory}/networks
white_list_path = {directory}/whitelist
check_period = 1
enable_connection_tracking = off
ban_for_pps = on
ban_for_bandwidth = off
ban_for_flows = off
threshold_pps = 1000
mirror_afpacket = on
interfaces = {interface}
average_calculation_time = 1
speed_calculation_delay = 1
notify_script_path = {script}
pid_path = {directory}/fastnetmon.pid
cli_stats_file_path = {directory}/stats.dat
cli_stats_ipv6_file_path = {directory}/stats6.dat
enable_api = off
prometheus = off
monitor_local_ip_addresses = off
"""


def fastnetmon_conf(directory: object, interface: str, script: object, records: int = 5) -> str:
    """FastNetMon's configuration: files in DIRECTORY, capture on INTERFACE, hook SCRIPT, and RECORDS sampled
    packets sent to the hook after a ban (its `attack_details` call: the top talkers)."""
    return FASTNETMON_CONF.format(directory=directory, interface=interface, script=script, records=records)


@contextlib.contextmanager
def running_fastnetmon(
    lab: Lab, directory: Path, script: Path, log_path: Path, networks: str, records: int = 5
) -> Iterator[subprocess.Popen[bytes]]:
    """FastNetMon in the lab's router namespace, watching NETWORKS (one prefix a line) with the hook SCRIPT; its
    files in DIRECTORY, its console in LOG_PATH. Skips the test when FastNetMon is not installed; always stopped."""
    binary = shutil.which("fastnetmon")
    if binary is None:
        pytest.skip("FastNetMon is not installed (Debian package fastnetmon)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "networks").write_text(networks)
    (directory / "whitelist").write_text("")
    config = directory / "fastnetmon.conf"
    config.write_text(fastnetmon_conf(directory, lab.router_ingress, script, records))
    argv = [binary, "--configuration_file", str(config), "--log_to_console", "--disable_pid_logic"]
    with log_path.open("wb") as console:
        detector = subprocess.Popen(lab.router.command(argv), stdout=console, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: b"fastnetmon" in log_path.read_bytes().lower(), 10, "FastNetMon")
            assert detector.poll() is None, log_path.read_text()
            yield detector
        finally:
            detector.terminate()
            try:
                detector.wait(timeout=10)
            except subprocess.TimeoutExpired:
                detector.kill()
                detector.wait(timeout=10)
