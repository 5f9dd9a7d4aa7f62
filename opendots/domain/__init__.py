"""The domain of a mitigation request, shared by the DOTS client, the signal and data channels, and the actuators.

It imports nothing from them, and no I/O: addresses (`addresses`), port and ICMP type ranges (`ranges`), the
target members of a scope with their one parser and writer (`targets`), the scope handed to a mitigator (`scope`),
counters (`counters`), registered numbers (`media`), the RFC 9132 Appendix C defaults both sides use (`defaults`)
and the one error, ScopeError (`errors`).

A target prefix travels: `opendots client mitigate --target-prefix` -> read_user_prefix -> the client's request ->
Targets.to_yang (YANG-JSON, CBOR on the wire) -> parse_targets on the server -> Targets -> MitigationScope.of ->
an actuator (nftables_keys, bgp.routes): one IPNetwork type from the client's parser to the actuator, and one name
for each member on every side (target_prefixes, target_port_ranges, ..., after the YANG leaves).
"""

from opendots.domain.addresses import IPNetwork, network_bounds, parse_prefix, read_user_prefix
from opendots.domain.counters import Counters
from opendots.domain.errors import ScopeError
from opendots.domain.media import DOTS_CBOR_CONTENT_FORMAT
from opendots.domain.ranges import IcmpTypeRange, PortRange, parse_icmp_type_ranges, parse_port_ranges
from opendots.domain.scope import MitigationScope, mitigation_key
from opendots.domain.targets import Targets, parse_targets

__all__ = [
    "DOTS_CBOR_CONTENT_FORMAT",
    "Counters",
    "IPNetwork",
    "IcmpTypeRange",
    "MitigationScope",
    "PortRange",
    "ScopeError",
    "Targets",
    "mitigation_key",
    "network_bounds",
    "parse_icmp_type_ranges",
    "parse_port_ranges",
    "parse_prefix",
    "parse_targets",
    "read_user_prefix",
]
