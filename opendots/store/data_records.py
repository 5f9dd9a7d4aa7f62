"""What the data channel stores, as plain values, the change set one request writes, and the store interface.

No database here: the sans-I/O data channel core (opendots.data.core) builds and reads these values; a store
(SQLite today: opendots.store.data_channel) makes them durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ClientRecord:
    cuid: str
    cdid: str | None
    created: float
    last_seen: float


@dataclass(frozen=True)
class StoredEntry:
    """One alias or ACL: its canonical JSON entry and when it expires (§3.5)."""

    name: str
    body: dict[str, Any]
    expires: float
    position: float = 0.0
    activation_type: str | None = None


@dataclass(frozen=True)
class AclWrite:
    name: str
    body: dict[str, Any]
    activation_type: str
    expires: float
    position: float


@dataclass
class Changes:
    """Everything one request changes for one client, applied atomically."""

    cuid: str
    register: tuple[str | None] | None = None  # (cdid,) creates or updates the client row
    unregister: bool = False
    alias_puts: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    alias_deletes: list[str] = field(default_factory=list)
    acl_puts: list[AclWrite] = field(default_factory=list)
    acl_deletes: list[str] = field(default_factory=list)
    clear_aliases: bool = False
    clear_acls: bool = False
    vendor_mapping: dict[str, Any] | None = None
    """RFC 9244 §8.1.6: the client's whole 'ietf-dots-mapping:vendor-mapping' as it is to be stored from now on."""
    clear_vendor_mapping: bool = False

    def empty(self) -> bool:
        return not (
            self.vendor_mapping is not None
            or self.clear_vendor_mapping
            or self.register
            or self.unregister
            or self.alias_puts
            or self.alias_deletes
            or self.acl_puts
            or self.acl_deletes
            or self.clear_aliases
            or self.clear_acls
        )

    def rows(self) -> int:
        """Rows the change writes or deletes by name: what its commit costs, roughly."""
        return len(self.alias_puts) + len(self.alias_deletes) + len(self.acl_puts) + len(self.acl_deletes)


class DataChannelStore(Protocol):
    def get_client(self, cuid: str) -> ClientRecord | None: ...

    def clients(self) -> list[ClientRecord]: ...

    def touch_client(self, cuid: str, now: float) -> None: ...

    def get_alias(self, cuid: str, name: str, now: float) -> StoredEntry | None: ...

    def list_aliases(self, cuid: str, now: float) -> list[StoredEntry]: ...

    def get_acl(self, cuid: str, name: str, now: float) -> StoredEntry | None: ...

    def list_acls(self, cuid: str, now: float, activation_type: str | None = None) -> list[StoredEntry]: ...

    def acl_positions(self, cuid: str, now: float) -> list[tuple[str, float]]: ...

    def acl_position_bounds(self, cuid: str, now: float, exclude: str) -> tuple[float, float] | None: ...

    def count_entries(self, cuid: str, now: float) -> int: ...

    def get_vendor_mapping(self, cuid: str) -> dict[str, Any] | None:
        """CUID's vendor attack mapping (RFC 9244 §8.1.6), canonical RFC 7951 JSON; None when it installed none."""
        ...

    def entry_names(self, kind: str, cuid: str, now: float) -> set[str]: ...

    def domain_acls(self, cdid: str, exclude_cuid: str, now: float) -> list[tuple[str, StoredEntry]]: ...

    def apply(self, changes: Changes, now: float) -> None:
        """Make CHANGES durable in one transaction; raises StoreError (nothing changed) when it cannot."""
        ...

    def set_acl_activation(self, cuid: str, name: str, activation_type: str, expires: float | None, now: float) -> bool:
        """Give CUID's live ACL NAME ACTIVATION_TYPE (and EXPIRES, unless None) in one transaction that reads
        the ACL too; False if there is no such ACL."""
        ...

    def writer(self) -> DataChannelStore | None:
        """The same data through a connection of its own, for a commit in a worker thread while this one keeps
        serving reads on the event loop; None when the store cannot offer one."""
        ...

    def close(self) -> None:
        """Close a writer()'s connection (a store's own database belongs to whoever opened it)."""
        ...

    def purge_expired(self, now: float) -> int: ...

    def dump(self) -> str: ...
