"""Inputs for the fuzz targets: seed corpora from the RFC figures, structure-aware generators and byte mutators.

The campaign (tools/fuzz_campaign.py) draws from these with a seeded random.Random; the Hypothesis tests in
tests/fuzz/test_entry_points.py build their strategies from the same vocabularies and seeds.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from typing import Any

import cbor2

from opendots.model import encode_signal, key_table
from tests.helpers import FIXTURES

DATA = FIXTURES

# ------------------------------------------------------------------------------------------------ vocabularies

CBOR_KEYS = sorted({entry.key for entry in key_table().entries})
"""Every registered CBOR key: random maps use mostly these, so decoding goes past the first lookup."""
ODD_KEYS = [0, -1, 52, 127, 128, 255, 256, 16383, 16384, 32767, 32768, 65535, 65536, 2**31, 2**64 - 1, -(2**64)]
SCALARS: list[Any] = [
    0, 1, -1, 23, 24, 255, 256, 65535, 2**32, 2**63, 2**64 - 1, 2**64, -(2**64), 10**30, 0.0, -0.0, 1.5,
    float("inf"), float("nan"), True, False, None, "", "a", "2001:db8::/32", "192.0.2.0/24", "1.2.3.4", "::",
    "dz6pHjaADkaFTbjr0JGBpw",
    "x" * 300, "\u00e9\u0000", b"", b"\x00\xff", "www.example.com", "*.example", "https://a.example/", "udp", "tcp",
]  # fmt: skip
CUIDS = ["alpha", "bravo", "dz6pHjaADkaFTbjr0JGBpw", "", "x" * 40, "%00", "cuid"]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "FETCH", "iPATCH", "HEAD", "OPTIONS", "X"]
SEGMENTS = [
    "mitigate", "config", "hb", "cuid=", "mid=", "cdid=", "sid=", "mid=1", "mid=-1", "mid=0", "mid=4294967295",
    "mid=4294967296", "mid=99999999999999999999", "mid=1e3", "mid= 1", "mid=+1", "mid=0x10", "sid=1", "cdid=x", "", "=",
    "cuid==", "mitigate=1", "\u00e9", ".well-known", "dots", "a" * 300,
]  # fmt: skip
QUERIES = [
    "target-prefix=2001:db8::/32", "target-port=80", "target-protocol=6", "target-fqdn=www.example.com",
    "target-uri=https://a.example/", "alias-name=x", "c=c", "c=n", "c=a", "c=x", "target-port=0-65535",
    "target-port=99999", "target-prefix=garbage", "target-prefix=", "=", "", "c", "a" * 300,
]  # fmt: skip

ROOT = "/ietf-dots-data-channel:dots-data"
DATA_PATHS = [
    ROOT, f"{ROOT}/dots-client={{cuid}}", f"{ROOT}/dots-client={{cuid}}/aliases", f"{ROOT}/dots-client={{cuid}}/acls",
    f"{ROOT}/dots-client={{cuid}}/aliases/alias=a", f"{ROOT}/dots-client={{cuid}}/acls/acl=x",
    f"{ROOT}/dots-client={{cuid}}/acls/acl=x/aces/ace=r", f"{ROOT}/dots-client={{cuid}}/acls/acl=x/aces/ace=r/matches",
    f"{ROOT}/capabilities", f"{ROOT}/dots-client=%2F", f"{ROOT}/dots-client=a,b", f"{ROOT}/dots-client=%zz",
    "/ietf-dots-data-channel:dots-data/dots-client", "/", "", "//", "/ietf-dots-data-channel:x", "/a:b/c=d/e",
    f"{ROOT}/dots-client={{cuid}}/acls/acl=x/aces/ace=r/actions/forwarding", f"{ROOT}/dots-client={{cuid}}/",
]  # fmt: skip
DATA_QUERY_NAMES = ["content", "depth", "fields", "insert", "point", "filter", "with-defaults", "x", ""]
DATA_QUERY_VALUES = ["all", "config", "nonconfig", "1", "0", "65535", "unbounded", "first", "last", "before", "after",
                     "x", "", "acl=x", "a;b", "a(b)"]  # fmt: skip
CONTENT_TYPES = ["application/yang-data+json", "application/yang-data+json; charset=utf-8", "application/json",
                 "application/yang-data+xml", "", None]  # fmt: skip
ACCEPTS = [None, "", "*/*", "application/yang-data+json", "text/html", "application/yang-data+json;q=0", ",,,"]
MEMBER_NAMES = [
    "ietf-dots-data-channel:dots-client", "ietf-dots-data-channel:aliases", "ietf-dots-data-channel:alias",
    "ietf-dots-data-channel:acls", "ietf-dots-data-channel:acl", "cuid", "cdid", "name", "target-prefix",
    "target-port-range", "lower-port", "upper-port", "target-protocol", "target-fqdn", "target-uri", "aces", "ace",
    "matches", "ipv4", "ipv6", "source-ipv4-network", "destination-ipv4-network", "destination-ipv6-network",
    "actions", "forwarding", "rate-limit", "type", "activation-type", "tcp", "udp", "icmp", "flags", "fragment",
    "source-port", "destination-port", "operator", "port", "pending-lifetime", "protocol", "ttl", "dscp", "length",
    "ietf-access-control-list:accept", "ietf-access-control-list:drop", "x:y", "",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------ seeds


def signal_figures() -> list[Any]:
    return [json.loads(path.read_text()) for path in sorted((DATA / "signal").glob("*.json"))]


def cbor_seeds() -> list[bytes]:
    """The RFC 9132 figures' bodies as CBOR (encoded without validation: responses are seeds too)."""
    seeds = [encode_signal(body, validate=False) for body in signal_figures()]
    seeds.append(bytes.fromhex("".join((DATA / "signal" / "figure08-mitigation-request.cbor.hex").read_text().split())))
    return seeds


def json_seeds() -> list[bytes]:
    """Bodies of the RFC 8783 figures (and the RFC 9133 ones next to them) as bytes."""
    seeds = []
    for path in sorted(DATA.glob("rfc8783/fig-*.txt")) + sorted(DATA.glob("rfc9133/*.json")):
        text = path.read_text()
        start = text.find("{")
        if start < 0:
            continue
        end = text.rfind("}")
        seeds.append(text[start : end + 1].replace("\\\n", "").encode())
    return seeds


# ------------------------------------------------------------------------------------------------ generators


def random_cbor_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 6 or roll < 0.45:
        return rng.choice(SCALARS) if rng.random() < 0.7 else rng.randint(-(2**16), 2**16)
    if roll < 0.75:
        size = rng.randint(0, 6)
        keys = [rng.choice(CBOR_KEYS) if rng.random() < 0.85 else rng.choice(ODD_KEYS) for _ in range(size)]
        return {key: random_cbor_value(rng, depth + 1) for key in keys}
    if roll < 0.95:
        return [random_cbor_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return cbor2.CBORTag(rng.choice([0, 1, 2, 24, 55799, 260, 261, 1000]), random_cbor_value(rng, depth + 1))


def random_cbor(rng: random.Random) -> bytes:
    """A CBOR map whose top-level key is a DOTS body's (mostly), values drawn from the key table."""
    top = rng.choice([1, 5, 30, 32, 49, 49, 1, 1, 0, 52])
    value = random_cbor_value(rng, 1)
    if rng.random() < 0.5:  # the usual shape: {1: {2: [ {...} ]}}
        value = {rng.choice([2, 30, 32]): [random_cbor_value(rng, 2) for _ in range(rng.randint(0, 3))]}
    try:
        return cbor2.dumps({top: value} if rng.random() < 0.9 else value)
    except (ValueError, TypeError, OverflowError):
        return cbor2.dumps({top: None})


def mutate(rng: random.Random, data: bytes, donors: list[bytes]) -> bytes:
    """One to four byte-level mutations: flips, interesting values, inserts, deletes, duplicates, splices."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        position = rng.randrange(len(buffer) + 1)
        if choice == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.choice([0x00, 0x01, 0x17, 0x18, 0x1F, 0x7F, 0x80, 0xFF, 0xBF,
                                                                 0x9F, 0x5F, 0xF6, 0xF7, 0xFF, 0x3B, 0x1B])  # fmt: skip
        elif choice == 2:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and buffer:
            del buffer[position : position + rng.randint(1, 16)]
        elif choice == 4 and buffer:
            chunk = buffer[position : position + rng.randint(1, 32)]
            buffer[position:position] = chunk * rng.randint(1, 8)
        elif choice == 5 and donors:
            donor = rng.choice(donors)
            cut = rng.randrange(len(donor) + 1)
            buffer = buffer[:position] + donor[cut : cut + rng.randint(1, 64)]
        elif choice == 6:
            buffer = buffer[:position]
        elif choice == 7 and len(buffer) >= 2:
            at = min(position, len(buffer) - 2)
            buffer[at : at + 2] = struct.pack("!H", rng.choice([0, 1, 0xFF, 0x100, 0x7FFF, 0xFFFF]))
        else:
            buffer[position:position] = rng.choice([b"\xbf", b"\x9f", b"\xff", b"\xd8\x18", b"\x5f\x41a\xff", b"{",
                                                    b'"', b"[", b"\\u0000", b"1e999999", b"-0", b"\xc0"])  # fmt: skip
    return bytes(buffer)


def cbor_input(rng: random.Random, seeds: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.35:
        return mutate(rng, rng.choice(seeds), seeds)
    if roll < 0.75:
        return random_cbor(rng)
    if roll < 0.9:
        return mutate(rng, random_cbor(rng), seeds)
    return rng.choice(seeds) if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


@dataclass(frozen=True)
class SignalInput:
    """One request for the sans-I/O signal core: what the CoAP shell would hand it."""

    method: str
    path: tuple[str, ...]
    query: tuple[str, ...]
    observe: int | None
    if_match_empty: bool
    payload: bytes | None
    peer: int
    """0: client 'client', 1: client 'other', 2: an unknown certificate (peer None)."""


def signal_path(rng: random.Random, cuids: list[str]) -> tuple[str, ...]:
    if rng.random() < 0.7:
        resource = rng.choice(["mitigate", "mitigate", "mitigate", "config", "hb"])
        path = [resource]
        if rng.random() < 0.2:
            path.append("cdid=" + rng.choice(["x", "", "a" * 60]))
        if rng.random() < 0.85:
            path.append("cuid=" + rng.choice(cuids))
        if rng.random() < 0.8:
            key = "mid" if resource != "config" else rng.choice(["sid", "mid"])
            value = str(rng.randint(1, 40)) if rng.random() < 0.8 else rng.choice(SEGMENTS)
            path.append(f"{key}={value}")
        if rng.random() < 0.05:
            path.append(rng.choice(SEGMENTS))
        return tuple(path)
    return tuple(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4)))


def signal_input(rng: random.Random, seeds: list[bytes], cuids: list[str]) -> SignalInput:
    method = rng.choice(["PUT", "PUT", "GET", "DELETE", "PUT", "GET"]) if rng.random() < 0.9 else rng.choice(METHODS)
    payload = (signal_body(rng) if rng.random() < 0.5 else cbor_input(rng, seeds)) if rng.random() < 0.8 else None
    query = tuple(rng.choice(QUERIES) for _ in range(rng.choice([0, 0, 0, 1, 2])))
    observe = rng.choice([None, None, None, 0, 1, 2, 2**24])
    peer = rng.choice([0, 0, 0, 1, 2])
    return SignalInput(method, signal_path(rng, cuids), query, observe, rng.random() < 0.1, payload, peer)


@dataclass(frozen=True)
class RestconfInput:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str | None
    accept: str | None
    via: str | None
    peer: int
    """0: client 'client', 1: client 'other', 2: an unknown certificate."""


def random_json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 6 or roll < 0.45:
        return rng.choice([0, 1, -1, 65535, 65536, 2**64, 1.5, True, False, None, "", "x", "198.51.100.0/24",
                           "2001:db8::/32", "drop", "accept", "immediate", "a" * 100, [], {}])  # fmt: skip
    if roll < 0.8:
        return {rng.choice(MEMBER_NAMES): random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def json_body(rng: random.Random, seeds: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return mutate(rng, rng.choice(seeds), seeds)
    if roll < 0.5:
        return rng.choice(seeds)
    value = random_json_value(rng, 1)
    body = json.dumps({rng.choice(MEMBER_NAMES[:5]): [value] if rng.random() < 0.7 else value}).encode()
    return mutate(rng, body, seeds) if roll > 0.9 else body


def restconf_input(rng: random.Random, seeds: list[bytes], cuids: list[str]) -> RestconfInput:
    method = (
        rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "POST", "PUT"])
        if rng.random() < 0.9
        else (rng.choice(METHODS))
    )
    path = rng.choice(DATA_PATHS).replace("{cuid}", rng.choice(cuids))
    query = tuple(
        (rng.choice(DATA_QUERY_NAMES), rng.choice(DATA_QUERY_VALUES)) for _ in range(rng.choice([0, 0, 0, 1, 2]))
    )
    cuid = rng.choice(cuids)
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.6:
        body = restconf_body(rng, cuid)
        if rng.random() < 0.1:
            body = mutate(rng, body, seeds)
        return RestconfInput(method, rng.choice(DATA_PATHS[:4]).replace("{cuid}", cuid), (), body,
                             CONTENT_TYPES[0], None, None, rng.choice([0, 0, 0, 1]))  # fmt: skip
    body = json_body(rng, seeds) if method in ("POST", "PUT", "PATCH") or rng.random() < 0.05 else b""
    content_type = rng.choice(CONTENT_TYPES) if rng.random() < 0.15 else CONTENT_TYPES[0]
    accept = rng.choice(ACCEPTS) if rng.random() < 0.1 else None
    via = rng.choice([None, "1.1 other", "1.1 opendots-data", ",,", "1.1"]) if rng.random() < 0.05 else None
    return RestconfInput(method, path, query, body, content_type, accept, via, rng.choice([0, 0, 0, 1, 2]))


def coap_seeds(cuids: list[str], bodies: list[bytes]) -> list[bytes]:
    """Well-formed CoAP requests as the DTLS layer hands them over: the datagram's plaintext."""
    import aiocoap
    from aiocoap.optiontypes import BlockOption

    seeds = []
    prefix = (".well-known", "dots")
    for index, (method, path, body) in enumerate(
        [
            (aiocoap.PUT, ("mitigate", f"cuid={cuids[0]}", "mid=1"), bodies[0]),
            (aiocoap.PUT, ("mitigate", f"cuid={cuids[0]}", "mid=2"), bodies[-1]),
            (aiocoap.GET, ("mitigate", f"cuid={cuids[0]}"), None),
            (aiocoap.GET, ("mitigate", f"cuid={cuids[0]}", "mid=1"), None),
            (aiocoap.DELETE, ("mitigate", f"cuid={cuids[0]}", "mid=1"), None),
            (aiocoap.PUT, ("config", f"cuid={cuids[0]}", "sid=1"), bodies[len(bodies) // 2]),
            (aiocoap.GET, ("config", f"cuid={cuids[0]}"), None),
            (aiocoap.PUT, ("hb",), bodies[-2]),
            (aiocoap.PUT, ("mitigate", f"cuid={cuids[1]}", "mid=3"), bodies[0]),
        ]
    ):
        message = aiocoap.Message(code=method)
        message.mtype, message.mid, message.token = aiocoap.NON, index + 1, bytes([index]) * (index % 9)
        message.opt.uri_path = (*prefix, *path)
        if body is not None:
            message.payload = body
            message.opt.content_format = 271
        if index == 3:
            message.opt.observe = 0
            message.opt.uri_query = ("c=a",)
        if index == 4:
            message.opt.if_match = [b""]
        if index == 1:
            message.opt.block1 = BlockOption.BlockwiseTuple(0, True, 2)
        if index == 6:
            message.opt.block2 = BlockOption.BlockwiseTuple(1, False, 0)
        seeds.append(message.encode())
    return seeds


# ------------------------------------------------------------------------------------------------ near-valid bodies
# Most random bodies are refused early (4.00, 400); these pass the decoder and reach the deeper paths (creates,
# refreshes, conflicts, aliases, ACLs), with a member dropped, repeated or retyped now and then.

PREFIXES = ["192.0.2.0/24", "192.0.2.1/32", "198.51.100.0/25", "203.0.113.7/32", "2001:db8::/32", "2001:db8:1::/48",
            "2001:db8::1/128", "10.0.0.0/8", "0.0.0.0/0", "::/0"]  # fmt: skip


def _prefix(rng: random.Random) -> str:
    """Mostly distinct prefixes (so creates are not all conflicts), sometimes the shared or refused ones."""
    if rng.random() < 0.6:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::/64"
    return rng.choice(PREFIXES)


def _perturb(rng: random.Random, entry: dict[str, Any], spare: dict[str, Any]) -> dict[str, Any]:
    if rng.random() < 0.3 and entry:
        entry.pop(rng.choice(list(entry)))
    if rng.random() < 0.2:
        name = rng.choice(list(spare))
        entry[name] = spare[name] if rng.random() < 0.7 else rng.choice(SCALARS[:22])
    return entry


def signal_body(rng: random.Random) -> bytes:
    from opendots.signal.server.core.messages import HEARTBEAT, MITIGATION_SCOPE, SIGNAL_CONFIG

    roll = rng.random()
    if roll < 0.75:
        spare: dict[str, Any] = {
            "target-prefix": [_prefix(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))],
            "target-port-range": [{"lower-port": rng.choice([0, 53, 80, 443]), "upper-port": rng.choice([80, 65535])}],
            "target-protocol": [rng.choice([6, 17, 1, 0, 255])],
            "target-fqdn": [rng.choice(["www.example.com", "a.alpha.example", "nope.invalid"])],
            "target-uri": ["https://portal.example.net/login"],
            "alias-name": [rng.choice(["a", "web", "x" * 70])],
            "lifetime": rng.choice([3600, 0, -1, 1, 2**32, 60]),
            "trigger-mitigation": rng.choice([True, False]),
            "ietf-dots-signal-channel-acl:acl-list": [
                {"ietf-dots-signal-channel-acl:acl-name": "x", "ietf-dots-signal-channel-acl:activation-type": 1}
            ],
        }
        entry = {name: spare[name] for name in ("target-prefix", "lifetime")}
        if rng.random() < 0.5:
            entry["target-port-range"] = spare["target-port-range"]
        entries = [_perturb(rng, entry, spare) for _ in range(rng.choice([1] * 9 + [2]))]
        body: Any = {MITIGATION_SCOPE: {"scope": entries}}
    elif roll < 0.9:
        values = {"heartbeat-interval": {"current-value": rng.choice([30, 0, 15, 240, 100000])},
                  "missing-hb-allowed": {"current-value": rng.choice([3, 0, 9, 100])},
                  "max-retransmit": {"current-value": rng.choice([3, 15, 0])},
                  "ack-timeout": {"current-value-decimal": rng.choice(["2.00", "0.50", "99.99"])}}  # fmt: skip
        phase = rng.choice(["mitigating-config", "idle-config"])
        config = {phase: _perturb(rng, dict(values), values)}
        if rng.random() < 0.2:
            config["sid"] = rng.choice([1, 2, 100, 0])
        body = {SIGNAL_CONFIG: config}
    else:
        body = {HEARTBEAT: {"peer-hb-status": rng.choice([True, False, 1])}}
    try:
        return encode_signal(body, validate=False)
    except Exception:  # a perturbation the encoder cannot even express: send the unperturbed kind
        return encode_signal({HEARTBEAT: {"peer-hb-status": True}}, validate=False)


def restconf_body(rng: random.Random, cuid: str) -> bytes:
    module = "ietf-dots-data-channel"
    roll = rng.random()
    if roll < 0.25:
        entry: dict[str, Any] = {"cuid": cuid}
        if rng.random() < 0.3:
            entry["cdid"] = rng.choice(["d", "", "x" * 300])
        body: Any = {f"{module}:dots-client": [entry]}
    elif roll < 0.55:
        spare: dict[str, Any] = {"name": rng.choice(["a", "web", "", "a/b"]),
                                 "target-prefix": [rng.choice(PREFIXES)], "target-protocol": [6],
                                 "target-port-range": [{"lower-port": 80, "upper-port": rng.choice([80, 10, 65536])}],
                                 "target-fqdn": ["www.example.com"], "target-uri": ["https://a.example/"]}  # fmt: skip
        entry = _perturb(rng, {"name": spare["name"], "target-prefix": spare["target-prefix"]}, spare)
        body = {f"{module}:aliases": {"alias": [entry]}} if rng.random() < 0.6 else {f"{module}:alias": [entry]}
    else:
        matches = rng.choice([
            {"ipv4": {"destination-ipv4-network": rng.choice(PREFIXES[:4])}},
            {"ipv6": {"destination-ipv6-network": rng.choice(PREFIXES[4:7])}},
            {"ipv4": {"destination-ipv4-network": "192.0.2.0/24"}, "udp": {"destination-port-range-or-operator": {
                "operator": "eq", "port": rng.choice([53, 70000])}}},
            {"ipv4": {"protocol": 6}, "tcp": {"flags-bitmask": {"operator": "match", "bitmask": 2}}},
            {},
        ])  # fmt: skip
        forwarding = rng.choice(["drop", "accept", "reject", "ietf-access-control-list:drop", "x"])
        ace: dict[str, Any] = {"name": rng.choice(["r", "s", ""]), "matches": matches,
                               "actions": {"forwarding": forwarding}}  # fmt: skip
        if rng.random() < 0.2:
            ace["actions"]["rate-limit"] = rng.choice(["100.00", "-1", "x"])
        spare = {"name": rng.choice(["x", "y", ""]), "type": rng.choice(["ipv4-acl-type", "ipv6-acl-type", "z"]),
                 "activation-type": rng.choice(["immediate", "deactivate", "activate-when-mitigating", "x"]),
                 "aces": {"ace": [ace]}, "pending-lifetime": 10}  # fmt: skip
        acl = _perturb(rng, {"name": spare["name"], "aces": spare["aces"]}, spare)
        body = {f"{module}:acls": {"acl": [acl]}} if rng.random() < 0.4 else {f"{module}:acl": [acl]}
    return json.dumps(body).encode()
