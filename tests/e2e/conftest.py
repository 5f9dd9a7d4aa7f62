"""Lab fixtures for the end-to-end tests: real namespaces, veths and nftables, removed after the tests."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from opendots.lab.netns import Lab, lab_unavailable_reason
from opendots.mitigate.nftables import NftablesMitigator


@pytest.fixture(scope="session")
def lab_reason() -> str | None:
    return lab_unavailable_reason()


@pytest.fixture(scope="session")
def callhome_lab_reason(lab_reason: str | None) -> str | None:
    """Why the RFC 9066 Call Home lab (opendots/lab/callhome_lab.py) cannot run here: no lab, or no conntrack for
    the NAT CPE's lookup (§5.3.2)."""
    if lab_reason is None and shutil.which("conntrack") is None:
        return "`conntrack` is not installed (Debian package conntrack): the NAT CPE's lookup needs it"
    return lab_reason


@pytest.fixture(scope="module")
def lab(lab_reason: str | None) -> Iterator[Lab]:
    """attacker → router → victim, shared by the tests of one module (each test uses its own nft table)."""
    if lab_reason is not None:
        pytest.skip(lab_reason)
    with Lab() as built:
        yield built


@pytest.fixture
def table_name() -> str:
    return f"odt{secrets.token_hex(4)}"


@pytest.fixture
async def nft_mitigator(lab: Lab, table_name: str) -> AsyncIterator[NftablesMitigator]:
    """An nftables mitigator hooked on the router's attacker-facing interface; its table is removed afterwards."""
    mitigator = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name, count_passed=True)
    yield mitigator
    await mitigator.cleanup()
