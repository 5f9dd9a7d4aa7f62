"""RFC 9133 filter control in mitigation requests: 'acl-list' changes the activation type of the client's
data-channel ACLs, and responses show the activation types as they are now."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opendots.config import ClientAuthorization
from opendots.signal.server.core.events import Event, MitigationChanged
from opendots.signal.server.core.filtering import AclActivation
from opendots.signal.server.core.messages import MITIGATION_SCOPE, Rejected, error, reject
from opendots.signal.server.core.paths import MitigatePath
from opendots.signal.server.core.policy import ServerSettings
from opendots.signal.server.core.scope import ACL_LIST, MitigationRequest

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opendots.signal.server.core.mitigations import Mitigation

log = logging.getLogger(__name__)

ACL_RETRY_AFTER = 60  # seconds: Max-Age of a 5.03 for a failed RFC 9133 ACL update


class AclRequests:
    def __init__(
        self, settings: Callable[[], ServerSettings], client_named: Callable[[str], ClientAuthorization | None]
    ) -> None:
        self._settings = settings
        self._client_named = client_named

    def control(
        self, client: ClientAuthorization, path: MitigatePath, parsed: MitigationRequest, now: float
    ) -> list[AclActivation]:
        """RFC 9133 §3.2.1: the activation changes 'acl-list' asks for, to the client's data-channel ACLs.

        Every name is checked here, and every change the mitigators could not enforce is refused (5.03) before
        anything changes. The changes are returned, not made: the shell stores them (before the mitigation, so a
        client told 5.03 can resend the request without 'acl-list' exactly as the RFC asks)."""
        control = self._settings().acl_control
        if control is None:
            raise reject("4.00", f"'{ACL_LIST}' is not supported by this DOTS server (no data channel)")
        if not parsed.trigger_mitigation:
            raise reject("4.00", f"'{ACL_LIST}' is for attack time, not in a preconfigured (idle) request")
        assert path.mid is not None
        wanted: list[AclActivation] = []
        for item in parsed.acl_controls:
            cuid = next((c for c in (path.cuid, client.cuid) if control.acl_exists(c, item.acl_name, now)), None)
            if cuid is None:
                raise reject("4.04", f"this DOTS client has no ACL named {item.acl_name!r}")
            if item.activation_type is not None:
                wanted.append(AclActivation(cuid, item.acl_name, item.activation_type, path.mid))
        refused = [
            (a, p)
            for a in wanted
            if (p := control.enforcement_problem(a.cuid, a.name, a.activation_type, now)) is not None
        ]
        if refused:
            raise update_failed([a for a, _ in refused], "; ".join(p for _, p in refused))
        return wanted

    def current(self, mitigation: Mitigation, entry: dict[str, Any], now: float) -> dict[str, Any]:
        """ENTRY with the activation types its 'acl-list' names as they are now (RFC 9133 §3.2.1: a change made
        elsewhere, e.g. over the data channel, is shown in responses and notifications)."""
        control = self._settings().acl_control
        if control is None or ACL_LIST not in entry:
            return entry
        owner = self._client_named(mitigation.record.client)
        cuids = (mitigation.record.cuid, *((owner.cuid,) if owner else ()))
        current = []
        for item in entry[ACL_LIST]:
            name = item["acl-name"]
            found = next((t for c in cuids if (t := control.activation_type(c, name, now)) is not None), None)
            current.append({**item, "activation-type": found} if found else item)
        return {**entry, ACL_LIST: current}

    def shown(self, client_name: str, mitigations: Iterable[Mitigation]) -> set[tuple[str, str]]:
        """(cuid, ACL name) of every ACL `current` reads to show MITIGATIONS of CLIENT_NAME: what a shell whose data
        store is remote reads beforehand, off its event loop."""
        owner = self._client_named(client_name)
        found: set[tuple[str, str]] = set()
        for m in mitigations:
            cuids = (m.record.cuid, *((owner.cuid,) if owner else ()))
            found.update((c, control.acl_name) for control in m.request.acl_controls for c in cuids)
        return found

    def activation_changed(
        self, owner: ClientAuthorization | None, cuid: str, mitigations: Iterable[Mitigation], now: float
    ) -> list[Event]:
        """The data channel changed CUID's ACLs (OWNER: the client using CUID): observers of its active
        mitigations that name ACLs are notified with the current activation types (RFC 9133 §3.2.1)."""
        events: list[Event] = []
        for m in mitigations:
            if not (m.enforcing and m.request.acl_controls):
                continue
            if m.record.cuid != cuid and (owner is None or m.record.client != owner.name):
                continue
            # Rendered when notified, not now: the activation types are read of the data channel's store then (a
            # remote one beforehand, off the loop: opendots.signal.server.shell.data_reads.notification_keys).
            render = functools.partial(self._with_current, m, m.snapshot_later(now), now)
            events.append(MitigationChanged(m.record.client, m.record.cuid, m.record.mid, render))
        return events

    def _with_current(self, m: Mitigation, snapshot: Callable[[], dict[str, Any]], now: float) -> dict[str, Any]:
        entry = snapshot()[MITIGATION_SCOPE]["scope"][0]
        return {MITIGATION_SCOPE: {"scope": [self.current(m, entry, now)]}}


def update_failed(failed: list[AclActivation], reason: str) -> Rejected:
    """5.03 naming the ACL updates that failed (RFC 9133 Figure 1); Max-Age says when to retry them."""
    log.error("RFC 9133 ACL update for %s failed: %s", failed[0].cuid, reason)
    entries = [{"acl-name": a.name, "activation-type": a.activation_type} for a in failed]
    body = {MITIGATION_SCOPE: {"scope": [{"mid": failed[0].mid, ACL_LIST: entries}]}}
    return Rejected(error("5.03", f"ACL update failed: {reason}", body, max_age=ACL_RETRY_AFTER))
