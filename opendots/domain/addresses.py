"""IP prefixes of a mitigation scope: one type, one parser, one rule for host bits.

A target-prefix (and RFC 9066's source-prefix) is an `inet:ip-prefix` (ietf-inet-types@2013-07-15.yang, see
/work/shared/spec/yang/): an address, '/', a prefix length. Its canonical form has every bit outside the prefix set
to zero. The rule here, for the wire and the server alike: a prefix with host bits set is refused (a server cannot
know whether 203.0.113.5/24 means the /24 or the host), and so is one without a prefix length. Only the client's
command line may turn user input into a prefix (`read_user_prefix`), and it tells the user when it did.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from opendots.domain.errors import ScopeError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ALL_ONES_V4 = 2**32 - 1
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*/[0-9]{1,3}")
_IPV4_TEXT = re.compile(r"[0-9.]+/[0-9]{1,2}")


def network_bounds(network: IPNetwork) -> tuple[int, int, int]:
    """(IP version, first address, last address) as integers: overlap and containment become comparisons. The last
    address comes from the prefix length; ipaddress's broadcast_address would build an address object (~4 µs)."""
    first = int(network.network_address)
    return network.version, first, first | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)


@functools.lru_cache(maxsize=8192)  # refreshes repeat their prefixes
def parse_prefix(text: str, member: str = "target-prefix") -> IPNetwork:
    """The inet:ip-prefix TEXT of MEMBER, or ScopeError: no prefix length, host bits set, or a loopback, multicast
    or broadcast prefix (RFC 9132 §4.4.1.1 forbids those as targets; RFC 9066 source-prefix follows the same rule)."""
    prefix = plain_network(text)
    if prefix is None:  # any other form, or invalid: ipaddress decides, and words the problem
        try:
            prefix = ipaddress.ip_network(text, strict=True)
        except (ValueError, TypeError) as problem:
            raise ScopeError(f"invalid {member} {text!r}: {problem}") from None
        if "/" not in text:
            raise ScopeError(f"{member} {text!r} needs a prefix length (CIDR notation)")
    check_prefix(prefix, text, member)
    return prefix


def check_prefix(prefix: IPNetwork, text: object, member: str = "target-prefix") -> None:
    if prefix.is_loopback or prefix.is_multicast or is_broadcast(prefix):
        raise ScopeError(f"{member} {text!r} is a loopback, multicast or broadcast address")


def read_user_prefix(text: str, member: str = "target-prefix") -> tuple[IPNetwork, str | None]:
    """A prefix typed by a person: an address alone means that host (/32, /128), and host bits are cleared. Returns
    the prefix and, when host bits were cleared, a note to show the user; everything else as parse_prefix."""
    text = text.strip()
    if "/" not in text:
        text = f"{text}/{128 if ':' in text else 32}"
    try:
        return parse_prefix(text, member), None
    except ScopeError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ScopeError(f"invalid {member} {text!r}: expected an address or a prefix in CIDR notation") from None
        if loose.with_prefixlen == text:
            raise  # a valid prefix refused for what it is (loopback, ...): that error stands
        check_prefix(loose, text, member)
        return loose, f"{member} {text} has host bits set: asking for {loose.with_prefixlen}"


def plain_network(text: str) -> IPNetwork | None:
    """The network of a CIDR text in the plain forms (hex groups, or a dotted quad; a decimal length), read with the
    C ``inet_pton`` and built from integers: a third of the cost of ``ip_network`` on a string, which tries IPv4
    first. None when the text has another form or anything is wrong (host bits, lengths, group syntax): the slow
    path then gives ip_network's verdict and words its error. tests/unit/domain/test_parsing.py holds the two to
    the same results."""
    # The address classes, not ip_network (which tries IPv4, then IPv6, raising and catching on the way); not
    # socket.inet_pton either, which would be faster but pulls the socket module into the sans-I/O cores.
    if _IPV6_TEXT.fullmatch(text):
        address_type, network = ipaddress.IPv6Address, ipaddress.IPv6Network
    elif _IPV4_TEXT.fullmatch(text):
        address_type, network = ipaddress.IPv4Address, ipaddress.IPv4Network
    else:
        return None
    address, _, length = text.partition("/")
    try:
        return network((int(address_type(address)), int(length)), strict=True)
    except ValueError:
        return None


def is_broadcast(prefix: IPNetwork) -> bool:
    """Whether an IPv4 prefix holds 255.255.255.255 (its last address is all ones)."""
    return prefix.version == 4 and int(prefix.network_address) | int(prefix.hostmask) == _ALL_ONES_V4
