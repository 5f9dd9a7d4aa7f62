"""What an operator chooses for the data channel core (the [data] table, read by opendots.data.shell.settings)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from opendots.data.core.policy import DEFAULT_CAPABILITIES
from opendots.model.data_channel import validate_capabilities
from opendots.model.vendor_mapping import validate_vendor_mapping

MINIMUM_LIFETIME = 10080 * 60.0  # §6.1, §7.2: aliases and ACLs live at least one week without refresh
# ACEs per ACL. Each ACE becomes one nftables rule (opendots/mitigate/nftables_acl.py); rules are matched one by
# one per packet, and 10,000 linear rules cut forwarding from ~97k to ~4k packets/s on the lab machine, so a few
# hundred is already a heavy filter. Validation costs ~0.5 ms per ACE (yangson, in a worker thread): 1,000 ACEs
# are ~0.5 s of one core, where 30,000 were 16 s.
DEFAULT_MAX_ACES = 1000


@dataclass
class DataChannelSettings:
    capabilities: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_CAPABILITIES))
    gateways: frozenset[str] = frozenset()  # CUIDs of server-domain gateways allowed to relay for others (§3.3)
    lifetime: float = MINIMUM_LIFETIME  # seconds an alias or ACL lives without a refresh (§3.5)
    server_id: str = "opendots-data"  # our Via pseudonym, for loop detection (§3.4)
    max_entries: int = 10_000  # aliases + ACLs per client (§10 quotas)
    max_aces: int = DEFAULT_MAX_ACES  # ACEs in one ACL
    # §3.1/§7.2: what to do when an ACE matches exactly what another client of the same domain (cdid) filters
    # with the opposite action: "reject" the new request (409, the RFC's default) or "allow" it.
    domain_conflicts: str = "reject"
    vendor_mapping: dict[str, Any] | None = None
    """RFC 9244 §8.1.6: the server's vendor attack mapping (the 'vendor-mapping' container), from [data]
    vendor_mapping; None: none to share (its GET is a 404; clients may still install theirs)."""
    max_attack_mappings: int = 10_000
    """Attack mappings one client may install (all vendors); more get 413. Validation is ~0.06 ms each, and a body
    of this size is decided in a worker thread (opendots.data.shell.runner)."""

    def __post_init__(self) -> None:
        self.capabilities = validate_capabilities(self.capabilities)
        if self.vendor_mapping is not None:
            self.vendor_mapping = validate_vendor_mapping(self.vendor_mapping, server=True)
        if self.domain_conflicts not in ("reject", "allow"):
            raise ValueError("domain_conflicts must be 'reject' or 'allow'")
