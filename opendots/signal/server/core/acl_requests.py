"""RFC 9133 filter control in mitigation requests: 'acl-list' changes the activation type of the client's
data-channel ACLs, and responses show the activation types as they are now."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opendots.config import ClientAuthorization
from opendots.signal.server.core.events import Event, MitigationChanged
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

    def control(self, client: ClientAuthorization, path: MitigatePath, parsed: MitigationRequest, now: float) -> None:
        """RFC 9133 §3.2.1: change the activation type of the client's data-channel ACLs named in 'acl-list'.

        Every name is checked before anything changes; the changes are stored (by the data channel, through
        `AclActivationControl`) before the mitigation, so a client told 5.03 can resend the request without
        'acl-list' exactly as the RFC asks."""
        control = self._settings().acl_control
        if control is None:
            raise reject("4.00", f"'{ACL_LIST}' is not supported by this DOTS server (no data channel)")
        if not parsed.trigger_mitigation:
            raise reject("4.00", f"'{ACL_LIST}' is for attack time, not in a preconfigured (idle) request")
        owners: list[tuple[str, str, str]] = []
        for item in parsed.acl_controls:
            cuid = next((c for c in (path.cuid, client.cuid) if control.acl_exists(c, item.acl_name, now)), None)
            if cuid is None:
                raise reject("4.04", f"this DOTS client has no ACL named {item.acl_name!r}")
            if item.activation_type is not None:
                owners.append((cuid, item.acl_name, item.activation_type))
        refused = [(o, p) for o in owners if (p := control.enforcement_problem(*o, now)) is not None]
        if refused:
            _update_failed(path, [owner for owner, _ in refused], "; ".join(p for _, p in refused))
        for owner in owners:
            try:
                control.set_activation(*owner, now)
            except Exception as problem:  # the data channel's store is outside the core: any failure is "could not"
                _update_failed(path, [owner], str(problem))

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
            snapshot = {MITIGATION_SCOPE: {"scope": [self.current(m, m.render(now), now)]}}
            events.append(
                MitigationChanged(m.record.client, m.record.cuid, m.record.mid, functools.partial(dict, snapshot))
            )
        return events


def _update_failed(path: MitigatePath, failed: list[tuple[str, str, str]], reason: str) -> None:
    """5.03 naming the ACL updates that failed (RFC 9133 Figure 1); Max-Age says when to retry them."""
    log.error("RFC 9133 ACL update for %s failed: %s", path.cuid, reason)
    entries = [{"acl-name": name, "activation-type": activation} for _, name, activation in failed]
    body = {MITIGATION_SCOPE: {"scope": [{"mid": path.mid, ACL_LIST: entries}]}}
    raise Rejected(error("5.03", f"ACL update failed: {reason}", body, max_age=ACL_RETRY_AFTER))
