"""FastNetMon in the lab: its configuration for the router namespace (AF_PACKET on the attacker-facing interface,
pps threshold 1000, our notify hook), shared by the e2e tests that run the real detector."""

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
