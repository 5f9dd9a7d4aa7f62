"""RFC 9133 filter control from `opendots client mitigate --acl`: the agent sends 'acl-list' to a real server over
DTLS, the server changes the activation type of an ACL made through the data channel (read back there), and
`client status` shows the activation types in force; a bad ACL name or activation type is a clear error."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from opendots.app import build_client_agent
from opendots.cli.main import cli
from opendots.config import ClientConfig
from opendots.data.client import DataChannelClient
from opendots.signal.client.shell.control import ControlClient, ControlError
from tests.helpers.acl_harness import udp_53_drop_acl

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
ACL_LIST = "ietf-dots-signal-control:acl-list"
DROP_WEB = udp_53_drop_acl("drop-web", "203.0.113.0/28")


async def _cli(config: Path, *args: str) -> Any:
    command = [args[0], args[1], "-c", str(config), *args[2:]]
    return await asyncio.to_thread(CliRunner().invoke, cli, command)


def _control_mitigate(path: Path, scope: dict[str, Any]) -> dict[str, Any]:
    with ControlClient(path) as control:
        try:
            return control.mitigate(scope)
        except ControlError as error:
            return {"error": str(error)}


async def test_client_mitigate_acl_changes_the_activation_type_of_a_data_channel_acl_rfc9133_3_2_1(
    app_server,
) -> None:
    running, directory = app_server
    config = ClientConfig.load(directory / "client.toml")
    config.signal_port = running.config.signal_port
    config.data_port = running.config.data_port
    config.control_socket = Path("/tmp") / f"od-acl-{uuid.uuid4().hex[:10]}.sock"
    config.save(directory / "client.toml")
    toml = directory / "client.toml"
    async with DataChannelClient.from_config(ClientConfig.load(toml)) as data:
        await data.register()
        await data.create_acls([DROP_WEB])
        assert (await data.acls("drop-web"))[0]["activation-type"] == "activate-when-mitigating"
        agent = build_client_agent(ClientConfig.load(toml))
        await agent.start()
        try:
            assert await agent.wait_connected(10)
            asked = await _cli(
                toml, "client", "mitigate", "--target-prefix", "203.0.113.0/28", "--acl", "drop-web=deactivate"
            )
            assert asked.exit_code == 0 and asked.stdout.split()[2] == "2.01", asked.output
            mid = int(asked.stdout.split()[1].rstrip(":"))
            # Read back through the data channel: the signal channel's request changed it.
            assert (await data.acls("drop-web"))[0]["activation-type"] == "deactivate"
            held = running.signal.service.core.table.get((data.cuid, mid))
            assert held.record.request[ACL_LIST] == [{"acl-name": "drop-web", "activation-type": "deactivate"}]

            # A change made over the data channel is what a refreshed status shows (RFC 9133 §3.2.1).
            await data.set_activation("drop-web", "activate-when-mitigating")
            shown = await _cli(toml, "client", "status", "--refresh")
            assert shown.exit_code == 0, shown.output
            header, row = shown.stdout.splitlines()[:2]
            assert header.split()[-1] == "ACLS" and row.split()[-1] == "drop-web=activate-when-mitigating"
            as_json = await _cli(toml, "client", "status", "--json")
            (entry,) = json.loads(as_json.stdout)[SCOPE]["scope"]
            assert entry[ACL_LIST] == [{"acl-name": "drop-web", "activation-type": "activate-when-mitigating"}]

            # The control API takes the same 'acl-list' in its scope; a name the client has not made is a 4.04.
            scope = {"target-prefix": ["198.51.100.0/28"], "lifetime": 60, ACL_LIST: [{"acl-name": "nope"}]}
            answer = await asyncio.to_thread(_control_mitigate, config.control_socket, scope)
            assert answer["code"] == "4.04" and "no ACL named 'nope'" in answer["diagnostic"], answer
            bad = {**scope, ACL_LIST: [{"acl-name": "drop-web", "activation-type": "sometimes"}]}
            refused = await asyncio.to_thread(_control_mitigate, config.control_socket, bad)
            assert "activation type 'sometimes'" in refused["error"] and "immediate" in refused["error"], refused
            unknown = await _cli(toml, "client", "mitigate", "--target-prefix", "198.51.100.0/28", "--acl", "nope")
            assert unknown.exit_code != 0 and "4.04" in unknown.output and "no ACL named 'nope'" in unknown.output
            typo = await _cli(toml, "client", "mitigate", "--target-prefix", "198.51.100.0/28", "--acl", "x=now")
            assert typo.exit_code == 2 and "activation type 'now'" in typo.output, typo.output
            idle = await _cli(
                toml, "client", "mitigate", "--target-prefix", "198.51.100.0/28", "--acl", "drop-web",
                "--no-trigger-mitigation",
            )  # fmt: skip
            assert idle.exit_code == 2 and "trigger-mitigation false" in idle.output, idle.output
            # Nothing the refused requests named changed, and the server holds only the first mitigation.
            assert (await data.acls("drop-web"))[0]["activation-type"] == "activate-when-mitigating"
            assert [m.record.mid for m in running.signal.service.core.table] == [mid]
        finally:
            await agent.stop()
