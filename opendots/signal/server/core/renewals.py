"""The refresh a client repeats all the time (RFC 9132 §4.4.1: the same request again, to renew its lifetime), made
cheap: written behind, and, when nothing but the expiry can change, answered without the general refresh's work.

Written behind: a renewal that must be stored stores its expiry `renewal_slack` seconds ahead (`written_ahead`), so
the renewals within the slack find the stored row covering them (`stored_covers`) and write nothing. A server killed
meanwhile comes back with the mitigation lasting at most the slack longer than granted, never shorter. With SQLite
workers or PostgreSQL the slack is 0 (other processes read the stored expiry), and every renewal is written.

Pure renewals: a refresh that finds the mitigation `renewable` marks it with the settings in force; the same bytes
again, by the client object its targets were checked for, under those very settings (a reload replaces them), are
then a pure renewal (`renewed_at`: only the expiry moves) as long as the stored expiry covers it. Any other change
to the mitigation makes a new object without the mark (Mitigation.with_changes, unless told to keep it). The
shortcut matters because the server pays each Python frame about three times over with the caches cold between two
messages (bench/message_cpu.py); tests/unit/signal/server/core/test_renewals.py holds it to the general path.
"""

from __future__ import annotations

from dataclasses import replace

from opendots.signal.server.core.messages import Status
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.policy import ServerSettings
from opendots.signal.server.core.transitions import IllegalTransition, Trigger, kind_of, next_status
from opendots.store.records import MitigationRecord


def refreshed_status(immediate: bool, held: int) -> Status:
    """Table 3's status after a refresh of a mitigation held in status HELD (IllegalTransition if it forbids one)."""
    status = _REFRESHED.get((immediate, held))  # the stored int hashes and compares as its Status
    if status is None:  # first met
        held_status = Status(held)
        status = _REFRESHED[(immediate, held_status)] = next_status(kind_of(immediate), held_status, Trigger.REFRESHED)
    return status


def renewable(refreshed: Mitigation, settings: ServerSettings) -> ServerSettings | None:
    """SETTINGS when a PUT repeating REFRESHED's bytes would change nothing in a refresh but the expiry, else None:
    no alias to resolve again, no RFC 9133 ACL control (a refresh naming ACLs sets their activation again), targets
    held as parsed, a finite lifetime granted as asked, and Table 3 keeping the status on a refresh. The caller
    checks what only it knows (outside Call Home, whose checks run on every request; not revived; not retargeted).
    No conflict, not terminating and an unchanged attack-status always hold right after a refresh; they are checked
    all the same, once per refresh rather than per renewal."""
    parsed, record = refreshed.request, refreshed.record
    if (
        parsed.targets.alias_names
        or parsed.acl_controls
        or refreshed.targets is not parsed.targets
        or refreshed.conflict
        or record.expires_at is None
        or record.terminating_until is not None
        or parsed.lifetime != record.lifetime
        or (parsed.attack_status is not None and int(parsed.attack_status) != record.attack_status)
    ):
        return None
    try:
        after = refreshed_status(parsed.trigger_mitigation, record.status)
    except IllegalTransition:
        return None
    return settings if after == record.status else None


def renewed_at(existing: Mitigation, now: float) -> Mitigation | None:
    """EXISTING (renewable) renewed at NOW: its expiry moved by the lifetime granted, nothing to write; None when
    the stored expiry does not cover the new one (the general refresh writes it ahead)."""
    record = existing.record
    expires = now + record.lifetime
    stored = existing.stored_expiry if existing.stored_expiry is not None else record.expires_at  # expiry_stored()
    if stored is None or stored < expires:
        return None
    return existing.with_changes({"expires_at": expires}, stored, existing.renewable)


def written_ahead(updated: Mitigation, slack: float) -> MitigationRecord:
    """The row a renewal stores: UPDATED's record, its expiry put SLACK seconds later (the caller bounds it by a
    quarter of the lifetime granted), which UPDATED notes as its `stored_expiry`."""
    record = updated.record
    if slack <= 0 or record.expires_at is None:
        return record
    updated.stored_expiry = record.expires_at + slack
    return replace(record, expires_at=updated.stored_expiry)


def stored_covers(existing: Mitigation, renewed: MitigationRecord) -> bool:
    """Whether the store already holds what a renewal of EXISTING to RENEWED must make durable: the same row but
    for the expiry, and an expiry no earlier than the renewed one (both indefinite, or the stored one later)."""
    record = existing.record
    if not (
        record.lifetime == renewed.lifetime
        and record.status == renewed.status
        and record.terminating_until == renewed.terminating_until
        and record.attack_status == renewed.attack_status
    ):
        return False
    stored = existing.stored_expiry if existing.stored_expiry is not None else record.expires_at  # expiry_stored()
    if renewed.expires_at is None or stored is None:
        return renewed.expires_at is None and stored is None
    return stored >= renewed.expires_at


_REFRESHED: dict[tuple[bool, Status], Status] = {}
"""Table 3's status after a refresh, by (immediate request, status held): filled from `next_status` as met (a dict
look-up per refresh instead of the table's key with its Enum-hashed trigger)."""
