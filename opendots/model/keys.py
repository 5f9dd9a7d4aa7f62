"""The DOTS signal channel CBOR key table (RFC 9132 Table 5 and the extension tables), loaded from cbor-keys.tsv.

The ``name`` of an entry is the YANG-JSON member name exactly as RFC 7951 spells it where that key is used: a
module prefix appears only where the namespace changes (e.g. ``ietf-dots-call-home:source-prefix``), so a member
name maps to one key and a key to one member name, independently of where it sits in a message.
"""

from __future__ import annotations

import csv
import enum
import functools
import importlib.resources
import io
from dataclasses import dataclass

# Which YANG module owns the keys defined by each source table.
_MODULE_BY_SOURCE_TABLE = {
    "RFC 9132 Table 5": "ietf-dots-signal-channel",
    "RFC 9133 Table 1": "ietf-dots-signal-control",
    "RFC 9244 Table 3": "ietf-dots-telemetry",
    "RFC 9066 Table 1": "ietf-dots-call-home",
    "RFC 9362 Table 2": "ietf-dots-robust-trans",
}

# Parameters that RFC 9132 carries in Uri-Path options; they have keys but no node in the YANG structure.
URI_PATH_PARAMETERS = frozenset({"cuid", "cdid", "sid"})

MIN_KEY = 1
MAX_KEY = 65535


class Comprehension(enum.Enum):
    REQUIRED = "comprehension-required"
    OPTIONAL = "comprehension-optional"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One row of the key table."""

    name: str
    """YANG-JSON member name, with the RFC 7951 module prefix where the table gives one."""
    key: int
    yang_type: str
    """As printed in the RFC table; ``leaf-list / inet:ip-prefix`` style for two-part cells."""
    cbor_major_type: str
    json_type: str
    defining_rfc: str
    source_table: str
    comprehension: Comprehension
    module: str
    """The YANG module whose table defines the key (for keys 1-51, where Uri-Path parameters live too)."""

    @property
    def local_name(self) -> str:
        return self.name.rpartition(":")[2]

    @property
    def prefix(self) -> str | None:
        """The module prefix written in the member name, if any."""
        return self.name.partition(":")[0] if ":" in self.name else None

    @property
    def in_yang_structure(self) -> bool:
        return self.name not in URI_PATH_PARAMETERS


class KeyTable:
    """Both directions of the key table, plus the range rules for keys nobody registered."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self.entries = tuple(sorted(entries, key=lambda entry: entry.key))
        self.by_key = {entry.key: entry for entry in self.entries}
        self.by_name = {entry.name: entry for entry in self.entries}
        if len(self.by_key) != len(self.entries) or len(self.by_name) != len(self.entries):
            raise ValueError("cbor-keys.tsv: duplicate key or parameter name")

    def __len__(self) -> int:
        return len(self.entries)


def comprehension_of_unknown_key(key: int) -> Comprehension:
    """RFC 9132 §10.6.1.1 Table 8: what an unregistered key in ``key``'s range demands."""
    if 128 <= key <= 255 or 16384 <= key <= MAX_KEY:
        return Comprehension.OPTIONAL
    return Comprehension.REQUIRED


def parse_key_table(text: str) -> KeyTable:
    rows = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    entries = [
        KeyEntry(
            name=row["parameter_name"],
            key=int(row["cbor_key"]),
            yang_type=row["yang_type"],
            cbor_major_type=row["cbor_major_type"],
            json_type=row["json_type"],
            defining_rfc=row["defining_rfc"],
            source_table=row["source_table"],
            comprehension=Comprehension(row["comprehension"]),
            module=_MODULE_BY_SOURCE_TABLE[row["source_table"]],
        )
        for row in rows
    ]
    return KeyTable(entries)


@functools.cache
def key_table() -> KeyTable:
    """The shipped table (opendots/model/cbor-keys.tsv), parsed once."""
    text = importlib.resources.files(__package__).joinpath("cbor-keys.tsv").read_text(encoding="utf-8")
    return parse_key_table(text)
