"""RFC 9133 filter control from the Call Home provider: `opendots callhome client mitigate --acl NAME[=TYPE]` sends
'acl-list' to the CPE (the RFC 9066 Call Home DOTS server, running as a process) over DTLS, and the CPE changes the
activation type of the provider's data-channel ACL in its store; an ACL the CPE does not hold is its 4.04, a bad
name or activation type is refused before anything is sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from opendots.callhome.provider_config import ProviderConfig
from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.data.records import DataChannelQuery
from opendots.signal.client.shell.control import ControlClient, ControlError
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.acl_harness import udp_53_drop_acl
from tests.helpers.callhome_processes import call_home_pair
from tests.helpers.cli import EX_DATAERR, one_line_error

DATA = "/ietf-dots-data-channel:dots-data"
DROP_DNS = udp_53_drop_acl("drop-dns", "192.0.2.0/28")


def _post(core: DataChannelCore, cuid: str, path: str, body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    request = RestconfRequest("POST", DATA + path, cuid, body=raw, content_type="application/yang-data+json")
    response = core.handle(request, time.time())
    assert response.status == 201, response.body


def _activation(db: Path, cuid: str, name: str) -> str:
    database = SqliteDatabase(db)
    try:
        acls = DataChannelQuery(SqliteDataChannelStore(database)).acls_for(cuid)
        return next(acl.activation_type for acl in acls if acl.name == name)
    finally:
        database.close()


def test_the_provider_mitigate_acl_changes_the_activation_type_of_its_acl_at_the_cpe_rfc9133_3_2_1(
    tmp_path: Path,
) -> None:
    for pair in call_home_pair(tmp_path, "dtls"):
        cpe = ServerConfig.load(pair.cpe_toml)
        provider_cuid = cpe.clients[0].cuid
        # The CPE's data channel holds an ACL of the provider (made there before the CPE starts: a CPE serves no
        # data channel of its own, but keeps the data channel's tables in its database).
        database = SqliteDatabase(cpe.db)
        core = DataChannelCore(SqliteDataChannelStore(database), cpe.client_by_cuid)
        _post(core, provider_cuid, "", {"ietf-dots-data-channel:dots-client": [{"cuid": provider_cuid}]})
        _post(
            core, provider_cuid, f"/dots-client={provider_cuid}", {"ietf-dots-data-channel:acls": {"acl": [DROP_DNS]}}
        )
        database.close()
        pair.provider()
        pair.cpe()
        pair.wait_connected()
        asked = pair.client(
            "mitigate", "--peer", "home", "--source-prefix", "192.0.2.66/32", "--target-prefix", "203.0.113.9/32",
            "--acl", "drop-dns=deactivate",
        )  # fmt: skip
        assert asked.exit_code == 0 and "home mid 1: 2.01" in asked.output, asked.output
        assert _activation(cpe.db, provider_cuid, "drop-dns") == "deactivate"
        status = pair.client("status", "--peer", "home", "--mid", "1", "--json")
        (answer,) = json.loads(status.output)
        (entry,) = answer["body"]["ietf-dots-signal-channel:mitigation-scope"]["scope"]
        assert entry["ietf-dots-signal-control:acl-list"] == [{"acl-name": "drop-dns", "activation-type": "deactivate"}]

        unknown = pair.client(
            "mitigate", "--peer", "home", "--source-prefix", "192.0.2.67/32", "--target-prefix", "203.0.113.9/32",
            "--acl", "nope",
        )  # fmt: skip
        one_line_error(unknown, EX_DATAERR, "CPE home answered 4.04", "no ACL named 'nope'")
        typo = pair.client(
            "mitigate", "--peer", "home", "--source-prefix", "192.0.2.67/32", "--target-prefix", "203.0.113.9/32",
            "--acl", "drop-dns=now",
        )  # fmt: skip
        assert typo.exit_code == 2 and "activation type 'now'" in typo.output, typo.output
        bad = {"source-prefix": ["192.0.2.68/32"], "target-prefix": ["203.0.113.9/32"], "acl-list": [{"name": "x"}]}
        control = ControlClient(ProviderConfig.load(pair.provider_toml).control_socket)
        with control, pytest.raises(ControlError) as refused:
            control.call(op="mitigate", peer="home", scope=bad)
        assert refused.value.code == "4.00" and "'acl-name' and 'activation-type' only" in str(refused.value)
        # Nothing the refused requests named changed.
        assert _activation(cpe.db, provider_cuid, "drop-dns") == "deactivate"
