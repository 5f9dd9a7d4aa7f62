"""What an operator reads: `opendots data` verbs print tables like the `client` verbs (one renderer), `--json` gives
the server's answer, durations carry their units (RFC 8783 pending-lifetime in minutes, RFC 9132 lifetimes in
seconds), `acl add` claims only what the server confirmed (stored), refusals are one line with the RESTCONF
error-tag, and the server's own lines carry no Python reprs. Against a real server built by opendots.app (the
logging mitigator only: nothing is enforced)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re

from click.testing import CliRunner

from opendots.cli.client import _session_value
from opendots.cli.main import cli
from opendots.cli.render import minutes, seconds, table
from opendots.data.client import DataChannelError, _first_error
from opendots.domain.ranges import PortRange
from opendots.domain.scope import MitigationScope


async def _data(running, directory, *args: str):
    """`opendots data ARGS -c client.toml --data-port PORT` (client.toml names another port)."""
    flags = ["-c", str(directory / "client.toml"), "--data-port", str(running.config.data_port)]
    return await asyncio.to_thread(CliRunner().invoke, cli, ["data", *args, *flags])


async def test_data_listings_are_tables_with_the_pending_lifetime_in_minutes_and_json_on_request(app_server) -> None:
    """RFC 8783 §6.2 and §7.3: pending-lifetime is in minutes (its YANG units)."""
    running, directory = app_server
    registered = await _data(running, directory, "register")
    assert registered.exit_code == 0 and registered.stdout.startswith("registered (cuid "), registered.output
    created = await _data(running, directory, "alias", "add", "web", "--prefix", "203.0.113.0/28", "--port", "443")
    replaced = await _data(running, directory, "alias", "add", "web", "--prefix", "203.0.113.0/28", "--protocol", "udp")
    assert (created.stdout, replaced.stdout) == ("alias web created\n", "alias web replaced\n")

    listed = await _data(running, directory, "alias", "list")
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "TARGETS", "PORTS", "PROTO", "LIFETIME", "LEFT"]
    assert re.fullmatch(r"web\s+203\.0\.113\.0/28\s+any\s+udp\s+\d+ min", row), listed.stdout
    [alias] = json.loads((await _data(running, directory, "alias", "list", "--json")).stdout)
    assert alias["target-protocol"] == [17] and isinstance(alias["pending-lifetime"], int)
    assert f"{alias['pending-lifetime']} min" in row

    added = await _data(
        running,
        directory,
        "acl",
        "add",
        "syn",
        "--destination",
        "198.51.100.0/24",
        "--protocol",
        "tcp",
        "--tcp-flags",
        "2",
        "--dst-port",
        "80",
        "--rate-limit",
        "1000",
    )
    assert added.exit_code == 0, added.output
    listed = await _data(running, directory, "acl", "list")
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "TYPE", "ACTIVATION", "RULE"] and header.endswith("LIFETIME LEFT")
    assert "ipv4 dst 198.51.100.0/24, tcp dst-port 80 flags 2" in row and "rate-limit 1000.0 bytes/s" in row
    assert re.search(r"\d+ min$", row), row
    config_only = await _data(running, directory, "acl", "list", "--content", "config")
    assert config_only.stdout.splitlines()[1].endswith(" -")  # no state data: no lifetime shown, none invented
    [acl] = json.loads((await _data(running, directory, "acl", "list", "syn", "--json")).stdout)
    assert acl["activation-type"] == "activate-when-mitigating"
    capabilities = await _data(running, directory, "capabilities")
    assert capabilities.stdout.startswith("CAPABILITY") and re.search(r"\nrate-limit +yes\n", capabilities.stdout)
    assert re.search(r"\nvendor-mapping-enabled +yes\n", capabilities.stdout)  # RFC 9244 §8.1.6
    assert json.loads((await _data(running, directory, "capabilities", "--json")).stdout)["rate-limit"] is True
    deleted = await _data(running, directory, "acl", "delete", "syn", "--json")
    assert json.loads(deleted.stdout)["status"] == 204
    assert (await _data(running, directory, "acl", "list")).stdout == "no ACLs\n"


async def test_acl_add_says_stored_never_installed_when_the_server_enforces_nothing(app_server) -> None:
    """The server runs the logging mitigator only; the data channel (RFC 8783) reports no enforcement, so the
    client says what the server confirmed and what the activation type means (§7.2)."""
    running, directory = app_server
    assert (await _data(running, directory, "register")).exit_code == 0
    added = await _data(
        running,
        directory,
        "acl",
        "add",
        "frags",
        "--destination",
        "2001:db8::/48",
        "--fragments",
        "--activation",
        "immediate",
    )
    assert added.exit_code == 0, added.output
    assert "installed" not in added.output
    assert added.stdout == "ACL frags stored (immediate: applied now)\n"
    assert "does not report enforcement" in added.stderr and '"not enforced"' in added.stderr
    when = await _data(running, directory, "acl", "activate", "frags", "--type", "activate-when-mitigating")
    assert when.stdout == (
        "ACL frags stored (activate-when-mitigating: applied only while this client has an active mitigation)\n"
    )


async def test_a_refusal_is_one_line_with_the_restconf_error_tag_and_message(app_server) -> None:
    """RFC 8040 §7.1: error-tag and error-message of the first error, on one line, exit status 65."""
    running, directory = app_server
    await _data(running, directory, "register")
    refused = await _data(running, directory, "acl", "add", "bad", "--destination", "10.0.0.0/8")
    assert refused.exit_code == 65 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("Error: 403 access-denied: ") and "10.0.0.0/8" in line
    missing = await _data(running, directory, "alias", "delete", "nothere")
    assert missing.exit_code == 65 and re.fullmatch(r"Error: 404 [a-z-]+: .*nothere.*\n", missing.stderr)


def test_an_error_body_that_is_not_restconf_still_makes_one_line() -> None:
    """A proxy's page or the HTTP layer's own answer (a 408 after body_timeout) is no `ietf-restconf:errors`."""
    error = DataChannelError(408, _first_error("<html>\n  <body>Request Timeout</body>\n</html>"))
    assert str(error) == "408: <html> <body>Request Timeout</body> </html>"
    restconf = {
        "ietf-restconf:errors": {
            "error": [{"error-tag": "invalid-value", "error-message": "a\nb", "error-path": "/x:y"}]
        }
    }
    assert str(DataChannelError(400, _first_error(json.dumps(restconf)))) == "400 invalid-value: a b (at /x:y)"


async def test_lifetimes_carry_their_unit_in_client_status_and_admin_mitigations(app_server) -> None:
    """RFC 9132 §4.4.1: lifetime is in seconds."""
    running, directory = app_server
    ports = ["--signal-port", str(running.config.signal_port)]
    client_toml, server_toml = str(directory / "client.toml"), str(directory / "server.toml")

    async def run(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args))

    placed = await run(
        "client", "mitigate", "-c", client_toml, *ports, "--target-prefix", "203.0.113.9/32", "--lifetime", "600"
    )
    assert placed.stdout.endswith("(lifetime 600 s)\n"), placed.output
    status = await run("client", "status", "-c", client_toml, *ports)
    row = status.stdout.splitlines()[1]
    assert re.search(r"attack-mitigation-in-progress\s+\d+ s\s+203\.0\.113\.9/32", row), status.stdout
    listed = await run("admin", "mitigations", "-c", server_toml)
    assert listed.stdout.splitlines()[0].split() == ["CLIENT", "MID", "STATUS", "LIFETIME", "PACKETS", "TARGETS"]
    assert re.search(r"\s\d+ s\s+-\s+203\.0\.113\.9/32$", listed.stdout.splitlines()[1]), listed.stdout


async def test_the_servers_ready_line_names_its_sockets_as_an_operator_writes_them(app_server) -> None:
    running, _ = app_server
    line = running.describe()
    assert line.startswith("DOTS signal channel listening on DTLS 127.0.0.1:")
    assert f"TLS 127.0.0.1:{running.config.signal_port}" in line
    assert f"data channel listening on HTTPS 127.0.0.1:{running.config.data_port}" in line
    assert "(" not in line and "'" not in line  # no Python tuples


def test_a_mitigation_scope_in_a_log_line_is_no_python_repr() -> None:
    scope = MitigationScope(
        "cuid/7", (ipaddress.ip_network("203.0.113.0/24"),), (PortRange(53, 53),), (17,), client="client", mid=7
    )
    assert str(scope) == "client client mid 7: 203.0.113.0/24 ports 53 protocols 17"
    assert "IPv4Network" not in f"{scope}" and str(MitigationScope("k", ())) == "k: no prefix"


def test_units_and_session_values_read_as_words() -> None:
    assert (seconds(3600), seconds(-1), seconds(None), minutes(10079), minutes(None)) == (
        "3600 s",
        "indefinite",
        "-",
        "10079 min",
        "-",
    )
    assert [_session_value(name, value) for name, value in (("connected", True), ("last-error", None))] == ["yes", "-"]
    assert _session_value("redirection", {"alt-server": "dots2", "ttl-left": 42}) == "to dots2 (42 s left of its TTL)"
    assert table([["a", 1]], ["X", "LONGER"]) == "X  LONGER\na  1"


async def test_admin_redirect_says_the_ttl_is_the_clients_cache_time_not_how_long_the_server_redirects(
    app_server,
) -> None:
    """RFC 9132 §4.6: Max-Age is how long a client may use the alternate; then it returns to the provisioned server
    (which, here, keeps redirecting until cleared)."""
    _, directory = app_server

    async def admin(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli, ["admin", *args, "-c", str(directory / "server.toml")])

    timed = await admin("redirect", "--to", "dots2.example.net", "--record", "192.0.2.10", "--ttl", "60")
    assert timed.stdout.splitlines() == [
        "redirecting to dots2.example.net (192.0.2.10), TTL 60 s",
        "clients return here when the TTL ends and are redirected again until `opendots admin redirect --clear`",
    ]
    endless = await admin("redirect", "--to", "dots2.example.net")
    assert endless.stdout.splitlines()[0] == (
        "redirecting to dots2.example.net (-), no TTL (Max-Age 2^32-1: clients keep the alternate)"
    )
    assert "4294967295" not in (await admin("status")).stdout
    await admin("redirect", "--clear")
