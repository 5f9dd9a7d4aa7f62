"""The YANG schema of the signal channel messages, as yangson can validate it.

RFC 9132 and its extensions define the messages with RFC 8791 ``sx:structure`` / ``sx:augment-structure``, which
yangson ignores. At load time we derive, from the shipped official module text, a view in which each structure is
a top-level ``container`` and each structure augmentation an ``augment`` of it. The leafrefs inside the structures
point into the data channel's ``dots-data`` tree, which is never part of a signal message, so the view also marks
them ``require-instance false`` (whether the ACL exists for that client is the signal core's check). The shipped
files stay untouched: derived texts are written to a temporary folder only while yangson reads them.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from yangson import DataModel
from yangson.schemanode import ContainerNode

SIGNAL_MODULE = "ietf-dots-signal-channel"
TELEMETRY_MODULE = "ietf-dots-telemetry"
SIGNAL_STRUCTURE = "dots-signal"
TELEMETRY_STRUCTURE = "dots-telemetry"

# ACL features the DOTS data channel filters use (RFC 8783 §4.2: IPv4, IPv6, TCP, UDP, ICMP); they decide which
# acl-type identities a conflict-scope may name.
_ACL_FEATURES = ("match-on-ipv4", "match-on-ipv6", "ipv4", "ipv6", "match-on-tcp", "match-on-udp", "match-on-icmp")

# (module name, revision, implemented?) — the signal channel modules and everything they import.
_MODULES: tuple[tuple[str, str, bool], ...] = (
    ("ietf-dots-signal-channel", "2021-09-02", True),
    ("iana-dots-signal-channel", "2021-09-02", True),
    ("ietf-dots-call-home", "2021-12-09", True),
    ("ietf-dots-signal-control", "2021-09-02", True),
    ("ietf-dots-telemetry", "2022-06-20", True),
    ("ietf-dots-robust-trans", "2023-02-28", True),
    # Implemented so that the structures' leafref paths into dots-data resolve to a type.
    ("ietf-dots-data-channel", "2020-05-28", True),
    ("ietf-access-control-list", "2019-03-04", True),
    # The ACL module has a leafref into ietf-interfaces, so that one must be implemented too.
    ("ietf-interfaces", "2018-02-20", True),
    ("ietf-packet-fields", "2019-03-04", False),
    ("ietf-ethertypes", "2019-03-04", False),
    ("ietf-inet-types", "2013-07-15", False),
    ("ietf-yang-types", "2013-07-15", False),
    ("ietf-network", "2018-02-26", False),
    ("ietf-network-topology", "2018-02-26", False),
    ("ietf-yang-structure-ext", "2020-06-17", False),
)

# Modules whose structure statements must be rewritten, with how many rewrites each must get (a guard against a
# silently missed statement if the module text ever changes).
_EXPECTED_REWRITES = {
    "ietf-dots-signal-channel": {"structure": 1, "augment": 0},
    "ietf-dots-telemetry": {"structure": 1, "augment": 1},
    "ietf-dots-call-home": {"structure": 0, "augment": 2},
    "ietf-dots-signal-control": {"structure": 0, "augment": 1},
    "ietf-dots-robust-trans": {"structure": 0, "augment": 2},
}

_STRUCTURE_RE = re.compile(r"^(\s*)sx:structure(\s)", re.MULTILINE)
_AUGMENT_STRUCTURE_RE = re.compile(r"^(\s*)sx:augment-structure(\s)", re.MULTILINE)
_LEAFREF_RE = re.compile(r"(\btype\s+leafref\s*\{)")


def _yang_dir() -> importlib.resources.abc.Traversable:
    return importlib.resources.files(__package__).joinpath("yang")


def official_module_text(name: str, revision: str) -> str:
    return _yang_dir().joinpath(f"{name}@{revision}.yang").read_text(encoding="utf-8")


# IANA maintains iana-dots-signal-channel from its registries; RFC 9066 §7.2 registered conflict cause 4 after the
# 2021-09-02 revision shipped here, so the view adds that enum (the registry's value and label).
_CUID_COLLISION_RE = re.compile(r"(\n(\s*)enum cuid-collision \{.*?\n\2\})", re.DOTALL)
_LEGITIMATE_TRAFFIC = """
{indent}enum request-rejected-legitimate-traffic {{
{indent}  value 4;
{indent}  description
{indent}    "Mitigation request rejected: the attack traffic has been
{indent}     classified as legitimate traffic.";
{indent}  reference
{indent}    "RFC 9066: Distributed Denial-of-Service Open Threat
{indent}     Signaling (DOTS) Signal Channel Call Home, Section 7.2";
{indent}}}"""


def _registry_additions(text: str) -> str:
    text, found = _CUID_COLLISION_RE.subn(lambda m: m.group(1) + _LEGITIMATE_TRAFFIC.format(indent=m.group(2)), text)
    if found != 1:
        raise RuntimeError("iana-dots-signal-channel: the conflict-cause enumeration was not found")
    return text


def derive_module_text(name: str, text: str) -> str:
    """The yangson view of one official module (unchanged if it defines no structure)."""
    if name == "iana-dots-signal-channel":
        return _registry_additions(text)
    expected = _EXPECTED_REWRITES.get(name)
    if expected is None:
        return text
    text, structures = _STRUCTURE_RE.subn(r"\1container\2", text)
    text, augments = _AUGMENT_STRUCTURE_RE.subn(r"\1augment\2", text)
    if {"structure": structures, "augment": augments} != expected:
        raise RuntimeError(f"{name}: expected {expected} structure statements, found {structures}/{augments}")
    return _LEAFREF_RE.sub(r"\1 require-instance false;", text)


def _namespace(text: str) -> str:
    match = re.search(r'^\s*namespace\s+"([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("module without namespace")
    return match.group(1)


def _yang_library(texts: dict[str, str]) -> str:
    modules = [
        {
            "name": name,
            "revision": revision,
            "namespace": _namespace(texts[name]),
            "conformance-type": "implement" if implemented else "import",
            **({"feature": list(_ACL_FEATURES)} if name == "ietf-access-control-list" else {}),
        }
        for name, revision, implemented in _MODULES
    ]
    return json.dumps({"ietf-yang-library:modules-state": {"module-set-id": "opendots-signal", "module": modules}})


@dataclass(frozen=True)
class SignalSchema:
    """The loaded data model and the two structure containers every message is checked against."""

    data_model: DataModel
    dots_signal: ContainerNode
    dots_telemetry: ContainerNode


def build_signal_schema() -> SignalSchema:
    texts = {name: official_module_text(name, revision) for name, revision, _ in _MODULES}
    with tempfile.TemporaryDirectory(prefix="opendots-yang-") as folder:
        for name, revision, _ in _MODULES:
            Path(folder, f"{name}@{revision}.yang").write_text(derive_module_text(name, texts[name]), encoding="utf-8")
        data_model = DataModel(_yang_library(texts), [folder])
    dots_signal = data_model.schema.get_child(SIGNAL_STRUCTURE, SIGNAL_MODULE)
    dots_telemetry = data_model.schema.get_child(TELEMETRY_STRUCTURE, TELEMETRY_MODULE)
    if not isinstance(dots_signal, ContainerNode) or not isinstance(dots_telemetry, ContainerNode):
        raise RuntimeError("derived YANG view lacks the dots-signal / dots-telemetry containers")
    return SignalSchema(data_model, dots_signal, dots_telemetry)


@functools.cache
def signal_schema() -> SignalSchema:
    """The schema, built on first use and shared by the whole process."""
    return build_signal_schema()
