"""nftables changes run in-process through libnftables (opendots.mitigate.libnftables), on a real router namespace.

An `nft` wrapper first on PATH logs every execution, so the tests count nft processes rather than trust a flag.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from opendots.lab.netns import Lab
from opendots.mitigate import libnftables
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.nftables import NftablesMitigator
from tests.helpers.nft import table_listing

pytestmark = pytest.mark.lab


@pytest.fixture
def nft_executions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log file with one line per `nft` process started from now on (by this process or its children)."""
    real = shutil.which("nft")
    if real is None:
        pytest.skip("nft is not installed")
    log = tmp_path / "nft-executions"
    log.touch()
    wrapper = tmp_path / "bin" / "nft"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{Path(real).parent}:/usr/bin:/bin")
    return log


def executions(log: Path) -> int:
    return len(log.read_text().splitlines())


async def exercise(mitigator: NftablesMitigator, address: object) -> None:
    """apply, read counters, withdraw, check health: every kind of nft command the mitigator sends."""
    scope = MitigationScope("cuid-a/1", (ipaddress.ip_network(str(address)),))
    await mitigator.apply(scope)
    assert (await mitigator.counters(scope.key)).pkts_dropped == 0
    assert await mitigator.health()
    await mitigator.withdraw(scope.key)
    await mitigator.cleanup()


async def test_the_default_mitigator_changes_nftables_without_starting_an_nft_process(
    lab: Lab, table_name: str, nft_executions: Path
):
    assert libnftables.load() is None  # libnftables1 is installed wherever nft is (nft is its front-end)
    mitigator = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    assert mitigator.in_process
    await exercise(mitigator, lab.victim_v4[0])
    assert executions(nft_executions) == 0
    # The same steps on the process backend do start nft processes, and the wrapper sees them.
    fallback = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name, backend="process")
    await exercise(fallback, lab.victim_v4[0])
    assert executions(nft_executions) >= 5


async def test_a_refused_batch_leaves_nothing_applied_and_reports_nfts_own_error_text(lab: Lab, table_name: str):
    # The batch adds a table, a chain in it, then a rule jumping to a chain that does not exist: the kernel refuses
    # the rule, and the table and chain added earlier in the same batch must be gone too (one transaction).
    where = {"family": "netdev", "table": table_name}
    rule = {**where, "chain": "c", "expr": [{"jump": {"target": "nowhere"}}]}
    commands = [{"table": {"family": "netdev", "name": table_name}}, {"chain": {**where, "name": "c"}}, {"rule": rule}]
    batch = json.dumps({"nftables": [{"add": command} for command in commands]})
    with pytest.raises(libnftables.NftError) as refused:
        await libnftables.run(lab.router.path, batch, json_output=True, timeout=10.0)
    assert table_listing(lab, table_name) is None
    # The same text `nft -j -f -` prints for the same batch (what the process backend reports).
    by_process = lab.router.run(["nft", "-j", "-f", "-"], input=batch, check=False)
    assert by_process.returncode != 0
    assert table_listing(lab, table_name) is None
    assert str(refused.value) == by_process.stderr.strip()
    assert "Error: Could not process rule: No such file or directory" in str(refused.value)


async def test_a_namespace_deleted_and_recreated_under_the_same_name_gets_a_fresh_worker(lab: Lab):
    name = f"odlib{secrets.token_hex(3)}"
    path = f"/run/netns/{name}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        await libnftables.run(path, "add table netdev kept", timeout=10.0)
        first = libnftables.worker_thread(path)
        assert first is not None
        assert "table netdev kept" in await libnftables.run(path, "list tables", timeout=10.0)
        assert libnftables.worker_thread(path) == first  # one worker per namespace, reused
        subprocess.run(["ip", "netns", "del", name], check=True)
        with pytest.raises(libnftables.NftError, match="cannot open network namespace"):
            await libnftables.run(path, "list tables", timeout=10.0)
        subprocess.run(["ip", "netns", "add", name], check=True)
        assert await libnftables.run(path, "list tables", timeout=10.0) == ""  # not the deleted namespace's table
        assert libnftables.worker_thread(path) not in (None, first)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
