"""`opendots client telemetry`: RFC 9244 telemetry from the DOTS client: the telemetry setup (configuration, pipe
capacity, baselines; §7), pre-or-ongoing-mitigation reports (§8.2), and what the server holds (`show`).

Like every client verb, through the running agent when its control socket answers, else over a session of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opendots.cli.client import _call, _check_code, _config_option, _json_option
from opendots.cli.render import print_json, protocol_name, rate, rates, table

SETUP = "ietf-dots-telemetry:telemetry-setup"
TELEMETRY = "ietf-dots-telemetry:telemetry"


def _build(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Build a body from operator values; a bad value is a usage error naming it, before anything is sent."""
    from opendots.signal.client.core.telemetry_bodies import TelemetryError

    try:
        return function(*args, **kwargs)
    except TelemetryError as error:
        raise click.BadParameter(str(error)) from None


def _done(result: dict[str, Any], what: str) -> None:
    _check_code(result)
    number = f"tsid {result['tsid']}: " if result.get("tsid") is not None else ""
    click.echo(f"{number}{result['code']} {what}")


@click.group("telemetry")
def telemetry() -> None:
    """DOTS telemetry (RFC 9244): setup, baselines, pipe capacity, attack reports."""


# ---------------------------------------------------------------- setup (§7.1)
@telemetry.group("setup")
def setup_group() -> None:
    """Telemetry configuration (RFC 9244 §7.1)."""


@setup_group.command("get")
@_config_option
@_json_option
def setup_get_command(config_path: Path, as_json: bool) -> None:
    """Show the server's acceptable values and this client's setups in force (GET /tm-setup)."""
    result, _ = _call(config_path, "telemetry-setup-get")
    if as_json:
        print_json(result.get("body"))
    _check_code(result)
    if not as_json:
        click.echo(setup_table((result.get("body") or {}).get(SETUP, {})))


@setup_group.command("set")
@_config_option
@click.option(
    "--measurement-interval",
    type=click.Choice(["5-minutes", "10-minutes", "30-minutes", "hour", "day", "week", "month"]),
)
@click.option(
    "--measurement-sample",
    type=click.Choice(["second", "5-seconds", "30-seconds", "minute", "5-minutes", "10-minutes", "30-minutes", "hour"]),
)
@click.option("--low-percentile", help="Percent, two fraction digits at most (e.g. 10.00).")
@click.option("--mid-percentile", help="Percent.")
@click.option("--high-percentile", help="Percent.")
@click.option(
    "--unit-class",
    "unit_classes",
    multiple=True,
    type=click.Choice(["packet-ps", "bit-ps", "byte-ps"]),
    help="Unit class to enable (repeatable).",
)
@click.option("--server-originated/--no-server-originated", default=None, help="Ask for server-originated telemetry.")
def setup_set_command(
    config_path: Path,
    measurement_interval: str | None,
    measurement_sample: str | None,
    low_percentile: str | None,
    mid_percentile: str | None,
    high_percentile: str | None,
    unit_classes: tuple[str, ...],
    server_originated: bool | None,
) -> None:
    """Install a telemetry configuration (PUT /tm-setup/tsid=N, §7.1.2)."""
    from opendots.signal.client.core.telemetry_bodies import config_entry

    entry = _build(
        config_entry,
        measurement_interval=measurement_interval,
        measurement_sample=measurement_sample,
        low_percentile=low_percentile,
        mid_percentile=mid_percentile,
        high_percentile=high_percentile,
        unit_classes=unit_classes,
        server_originated_telemetry=server_originated,
    )
    _done(_call(config_path, "telemetry-setup-set", entry=entry)[0], "telemetry configuration installed")


@setup_group.command("delete")
@_config_option
@click.option("--all", "everything", is_flag=True, help="Every setup of this client: configuration, pipe, baselines.")
def setup_delete_command(config_path: Path, everything: bool) -> None:
    """Back to the server's default configuration (DELETE /tm-setup/tsid=N, §7.1.4; --all: §7.4)."""
    result, _ = _call(config_path, "telemetry-setup-delete", kind=None if everything else "current-config")
    _done(result, "every telemetry setup deleted" if everything else "telemetry configuration deleted")


# ---------------------------------------------------------------- pipe (§7.2), baseline (§7.3)
@telemetry.group("pipe")
def pipe_group() -> None:
    """Total pipe capacity of the client's domain (RFC 9244 §7.2)."""


@pipe_group.command("set")
@_config_option
@click.option(
    "--link",
    "links",
    multiple=True,
    required=True,
    metavar="ID=CAPACITY[:UNIT]",
    help="A link and its capacity, e.g. uplink=10:Gbps (repeatable; default unit Mbps).",
)
def pipe_set_command(config_path: Path, links: tuple[str, ...]) -> None:
    """Install the pipe capacity (PUT /tm-setup/tsid=N, §7.2.1)."""
    from opendots.signal.client.core.telemetry_bodies import pipe_entry

    pairs = []
    for text in links:
        link_id, equals, capacity = text.partition("=")
        if not equals:
            raise click.BadParameter(f"{text!r} is not ID=CAPACITY[:UNIT]", param_hint="--link")
        pairs.append((link_id, capacity))
    _done(_call(config_path, "telemetry-setup-set", entry=_build(pipe_entry, pairs))[0], "pipe capacity installed")


@pipe_group.command("delete")
@_config_option
def pipe_delete_command(config_path: Path) -> None:
    """Remove the pipe capacity this client installed (§7.2.3)."""
    _done(_call(config_path, "telemetry-setup-delete", kind="total-pipe-capacity")[0], "pipe capacity deleted")


@telemetry.group("baseline")
def baseline_group() -> None:
    """Normal traffic baselines (RFC 9244 §7.3)."""


@baseline_group.command("set")
@_config_option
@click.option("--target-prefix", "prefixes", multiple=True, help="Prefix the baseline is for (repeatable).")
@click.option("--normal", multiple=True, metavar="RATE[:UNIT]", help="Normal traffic (its mid percentile).")
@click.option("--peak", multiple=True, metavar="RATE[:UNIT]", help="Peak of the normal traffic.")
@click.option("--id", "baseline_id", type=int, default=1, show_default=True, help="Baseline id.")
def baseline_set_command(
    config_path: Path, prefixes: tuple[str, ...], normal: tuple[str, ...], peak: tuple[str, ...], baseline_id: int
) -> None:
    """Install a baseline (PUT /tm-setup/tsid=N, §7.3.1); it replaces this client's previous baselines."""
    from opendots.signal.client.core.telemetry_bodies import baseline, baseline_entry

    entry = _build(lambda: baseline_entry([baseline(baseline_id, prefixes, normal=normal, peak=peak)]))
    _done(_call(config_path, "telemetry-setup-set", entry=entry)[0], "baseline installed")


@baseline_group.command("delete")
@_config_option
def baseline_delete_command(config_path: Path) -> None:
    """Remove the baselines this client installed (§7.3.3)."""
    _done(_call(config_path, "telemetry-setup-delete", kind="baseline")[0], "baselines deleted")


# ---------------------------------------------------------------- reports (§8.2)
@telemetry.command("report")
@_config_option
@click.option("--target-prefix", "prefixes", multiple=True, required=True, help="Attacked prefix (repeatable).")
@click.option("--total-traffic", multiple=True, metavar="RATE[:UNIT]", help="All traffic toward the target.")
@click.option("--total-attack-traffic", multiple=True, metavar="RATE[:UNIT]", help="Attack traffic (e.g. 25000:pps).")
@click.option(
    "--top-talker",
    "talkers",
    multiple=True,
    metavar="SRC[:PORT]",
    help="Attack source: address or prefix, optional port ([v6]:port) (repeatable).",
)
@click.option("--vendor-id", type=int, default=0, show_default=True, help="IANA enterprise number of --attack-id.")
@click.option("--attack-id", type=int, help="The vendor's attack id.")
@click.option("--description", help="Attack description.")
@click.option("--severity", type=click.Choice(["none", "low", "medium", "high", "unknown"]))
@click.option("--start-time", type=int, help="Attack start, seconds since the epoch.")
@click.option("--tmid", type=int, help="Telemetry id (default: the next free one); one of ours updates it.")
@_json_option
def report_command(
    config_path: Path,
    prefixes: tuple[str, ...],
    total_traffic: tuple[str, ...],
    total_attack_traffic: tuple[str, ...],
    talkers: tuple[str, ...],
    vendor_id: int,
    attack_id: int | None,
    description: str | None,
    severity: str | None,
    start_time: int | None,
    tmid: int | None,
    as_json: bool,
) -> None:
    """Report pre-or-ongoing-mitigation telemetry (PUT /tm/tmid=N, RFC 9244 §8.2)."""
    from opendots.signal.client.core.telemetry_bodies import AttackDetail, parse_talker, report_entry

    def build() -> dict[str, Any]:
        attack = None
        if talkers or attack_id is not None or description or severity or start_time is not None:
            attack = AttackDetail(
                vendor_id,
                attack_id or 0,
                description,
                severity,
                start_time,
                talkers=tuple(parse_talker(text) for text in talkers),
            )
        return report_entry(
            prefixes, total_traffic=total_traffic, total_attack_traffic=total_attack_traffic, attack=attack
        )

    entry = _build(build)
    result, _ = _call(config_path, "telemetry-report", entries=[entry], **({"tmid": tmid} if tmid is not None else {}))
    if as_json:
        print_json({TELEMETRY: {"pre-or-ongoing-mitigation": [{"tmid": result.get("tmid"), **entry}]}})
    _check_code(result)
    if not as_json:
        click.echo(f"tmid {result['tmid']}: {result['code']} telemetry reported")


@telemetry.command("delete")
@_config_option
@click.option("--tmid", type=int, help="Only this report (default: every report of this client).")
def delete_command(config_path: Path, tmid: int | None) -> None:
    """Delete pre-or-ongoing-mitigation telemetry (DELETE /tm, §8.2)."""
    result, _ = _call(config_path, "telemetry-delete", **({"tmid": tmid} if tmid is not None else {}))
    _check_code(result)
    click.echo(f"{result['code']} " + (f"tmid {tmid} deleted" if tmid is not None else "every report deleted"))


@telemetry.command("show")
@_config_option
@_json_option
def show_command(config_path: Path, as_json: bool) -> None:
    """What the server holds for this client: setups in force and telemetry reports."""
    result, _ = _call(config_path, "telemetry-show")
    setup, reports = result["setup"], result["reports"]
    _check_code(setup)
    if reports.get("code") != "4.04":
        _check_code(reports)
    setup_body = (setup.get("body") or {}).get(SETUP, {})
    entries = (reports.get("body") or {}).get(TELEMETRY, {}).get("pre-or-ongoing-mitigation", [])
    if as_json:
        print_json({SETUP: setup_body, TELEMETRY: {"pre-or-ongoing-mitigation": entries}})
        return
    click.echo(setup_table(setup_body))
    click.echo()
    click.echo(reports_table(entries) if entries else "no telemetry reports")


# ---------------------------------------------------------------- tables
def _config_words(config: dict[str, Any]) -> str:
    words = []
    for name in ("measurement-interval", "measurement-sample"):
        if name in config:
            words.append(f"{name} {config[name]}")
    for name in ("low-percentile", "mid-percentile", "high-percentile"):
        if name in config:
            words.append(f"{name} {config[name]} %")
    enabled = [item["unit"] for item in config.get("unit-config", []) if item.get("unit-status")]
    if enabled:
        words.append("units " + ",".join(enabled))
    if "server-originated-telemetry" in config:
        words.append(f"server-originated {'on' if config['server-originated-telemetry'] else 'off'}")
    return ", ".join(words)


def _baseline_words(entry: dict[str, Any]) -> str:
    targets = " ".join([*entry.get("target-prefix", []), *entry.get("target-fqdn", []), *entry.get("alias-name", [])])
    return f"id {entry['id']} {targets or 'whole domain'}: normal {rates(entry.get('total-traffic-normal', []))}"


def setup_table(setup: dict[str, Any]) -> str:
    """One row per setup in force: its tsid ('default' for the server's configuration), kind and values."""
    return table(setup_rows(setup), ["TSID", "SETUP", "VALUES"])


def setup_rows(setup: dict[str, Any]) -> list[list[str]]:
    """[tsid, kind, values] of each setup (also the operator console's telemetry view)."""
    rows = []
    for entry in setup.get("telemetry", []):
        tsid = str(entry.get("tsid", "default"))
        if "current-config" in entry:
            rows.append([tsid, "configuration", _config_words(entry["current-config"])])
        for link in entry.get("total-pipe-capacity", []):
            rows.append([tsid, "pipe", f"link {link['link-id']}: {rate(link['capacity'], link['unit'])}"])
        for item in entry.get("baseline", []):
            rows.append([tsid, "baseline", _baseline_words(item)])
    return rows


REPORT_COLUMNS = [
    "TMID", "TARGET", "TOTAL TRAFFIC", "ATTACK TRAFFIC", "ATTACK", "SEVERITY", "TOP TALKERS", "BY PROTOCOL; BY PORT",
]  # fmt: skip


def reports_table(entries: list[dict[str, Any]]) -> str:
    return table(report_rows(entries), REPORT_COLUMNS)


def report_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    """One row of words per pre-or-ongoing-mitigation entry (also the operator console's telemetry view)."""
    rows = []
    for entry in entries:
        target = entry.get("target", {})
        targets = [*target.get("target-prefix", []), *target.get("target-fqdn", [])]
        targets += [f"mid:{mid}" for mid in target.get("mid-list", [])]
        details = entry.get("attack-detail", [])
        attack = ", ".join(
            f"{d['vendor-id']}/{d['attack-id']}" + (f" {d['attack-description']}" if "attack-description" in d else "")
            for d in details
        )
        talkers = [
            talker["source-prefix"] + "".join(f":{p['lower-port']}" for p in talker.get("source-port-range", [])[:1])
            for detail in details
            for talker in detail.get("top-talker", {}).get("talker", [])
        ]
        rows.append(
            [
                str(entry.get("tmid", "")),
                " ".join(targets),
                rates(entry.get("total-traffic", [])),
                rates(entry.get("total-attack-traffic", [])),
                attack or "-",
                ",".join(d.get("attack-severity", "-") for d in details) or "-",
                " ".join(talkers) or "-",
                _breakdown_words(entry),
            ]
        )
    return rows


def _breakdown_words(entry: dict[str, Any]) -> str:
    """RFC 9244 §8.3 'total-traffic-protocol' and 'total-traffic-port' (all the traffic toward the target, per
    protocol, per destination port), one gauge per unit (the current one, else the mid or peak percentile; --json
    has them all): 'udp 180 pps/1440 Bps, tcp 70 pps; port 53 150 pps'; '-' when neither list is there."""
    sections = []
    for kind, name in (("protocol", protocol_name), ("port", lambda port: f"port {port}")):
        items = entry.get(f"total-traffic-{kind}", [])
        gauges: dict[Any, list[str]] = {}
        for item in items if isinstance(items, list) else []:
            leaf = next((leaf for leaf in BREAKDOWN_GAUGES if leaf in item), None) if isinstance(item, dict) else None
            if leaf is not None:
                word = rate(item[leaf], item.get("unit", "")) + BREAKDOWN_GAUGES[leaf]
                gauges.setdefault(item.get(kind), []).append(word)
        if gauges:
            sections.append(", ".join(f"{name(number)} {'/'.join(words)}" for number, words in gauges.items()))
    return "; ".join(sections) or "-"


BREAKDOWN_GAUGES = {"current-g": "", "mid-percentile-g": " (mid)", "peak-g": " (peak)"}
