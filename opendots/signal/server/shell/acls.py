"""The asyncio edge that enforces data-channel ACLs (RFC 8783 §7.3, RFC 9133) on the mitigators.

A client's ACLs are re-decided (opendots.signal.server.core.filtering) whenever
  (a) the data channel changed them (DataChannelCore.subscribe, also RFC 9133 changes over the signal channel),
  (b) one of the client's mitigations became active or ended (`mitigations_changed`),
  (c) an ACL's lifetime ran out (RFC 8783 §3.5: a timer at the earliest expiry),
  (d) the server starts (`start`: actuators forget across restarts).
One worker task applies the decisions in order, so the mitigator never sees two changes of a client at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from opendots.config import ClientAuthorization
from opendots.data.core import DataChannelCore
from opendots.data.records import Acl
from opendots.mitigate.base import AclActuator, AclPlanner, Mitigator, MitigatorError
from opendots.mitigate.nftables_acl import AclPolicy, policy_from_record
from opendots.signal.server.core.filtering import (
    DEACTIVATE,
    WHEN_MITIGATING,
    AclActivation,
    acl_key,
    acls_to_enforce,
    next_expiry,
    plan_change,
)
from opendots.signal.server.shell.data_reads import EntryReader

log = logging.getLogger(__name__)

T = TypeVar("T")
STOP_GRACE = 10.0  # seconds a stopping server waits for the nft change in progress


class AclSource(Protocol):
    def acls_for(self, cuid: str, activation_type: str | None = None) -> list[Acl]: ...


class AclEnforcer:
    def __init__(
        self,
        source: AclSource,
        mitigator: Mitigator,
        authorize: Callable[[str], ClientAuthorization | None],
        mitigating: Callable[[str], bool],
        known_cuids: Callable[[], Iterable[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """SOURCE reads a client's ACLs (DataChannelQuery, same clock); MITIGATOR has apply_acl/withdraw_acl
        (MitigatorRouter); AUTHORIZE gives a cuid's authorization (its prefixes confine every ACE); MITIGATING
        says whether a cuid has an active mitigation; KNOWN_CUIDS lists the clients to restore at start."""
        self.source = source
        self.mitigator = mitigator
        self.actuator = mitigator if isinstance(mitigator, AclActuator) else None
        self.authorize = authorize
        self.mitigating = mitigating
        self.known_cuids = known_cuids
        self.clock = clock
        self.refused: dict[str, str] = {}
        """ACL key -> why it is not (fully) enforced: reported to operators (logs) and tests."""
        self._enforced: dict[str, dict[str, Acl]] = {}  # cuid -> key -> ACL, in enforcement order
        self._deadlines: dict[str, float] = {}  # cuid -> next ACL expiry
        self._dirty: set[str] = set()
        self._without_acls: set[str] = set()
        """Cuids found with no stored ACL: a mitigation event has nothing to reconcile for them, and only a
        data-channel change (client_changed) can give them one. Saves a store query per mitigation event."""
        self._busy = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.may_act: Callable[[], bool] = lambda: True
        """False while another node drives the mitigators (the lease, lease_fence): changes wait here meanwhile."""

    # ---- triggers (synchronous: callable from any callback) ----

    def client_changed(self, cuid: str) -> None:
        """The client's ACLs changed (data channel subscription)."""
        self._without_acls.discard(cuid)
        self._dirty.add(cuid)
        self._wake.set()

    def mitigations_changed(self, client_name: str, cuids: Iterable[str]) -> None:
        """A mitigation of CLIENT_NAME became active or ended; CUIDS: the cuids its ACLs may be stored under."""
        dirty = {cuid for cuid in cuids if cuid not in self._without_acls}
        dirty.update(c for c in self._enforced if self._owner(c) == client_name)
        if dirty:
            self._dirty.update(dirty)
            self._wake.set()

    # ---- life cycle ----

    async def start(self) -> None:
        """Enforce what the stored ACLs call for now (after the mitigators restored their mitigations)."""
        self._dirty.update(await self._read(self.known_cuids))
        self._task = asyncio.create_task(self._run())
        await self.idle()

    async def stop(self) -> None:
        """Let the change in progress finish (a cancelled nft batch leaves us unsure of what is enforced), then end.

        Enforcement stays in place: the kernel keeps it, and the next start re-decides from the store."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def resume(self) -> None:
        """`may_act` is true again (this node took the lease back): what waited is enforced now."""
        self._wake.set()

    def restored(self) -> None:
        """The actuators were restored (a cluster node taking the lease again, or reconciling after late lease
        checks): a restore replaces all an actuator holds, its ACLs too (opendots.mitigate.router), so every ACL
        enforced here is applied again."""
        self._dirty.update(self._enforced)
        self._enforced.clear()
        self._wake.set()

    async def idle(self) -> None:
        """Wait until every pending decision has been applied (tests, orderly shutdown)."""
        while self._dirty or self._busy:
            await asyncio.sleep(0.01)

    def enforced(self, cuid: str) -> list[str]:
        return list(self._enforced.get(cuid, {}))

    # ---- worker ----

    async def _run(self) -> None:
        while not self._stopping:
            if not self._dirty:
                deadline = min(self._deadlines.values(), default=None)
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                self._wake.clear()
                now = self.clock()
                self._dirty.update(cuid for cuid, at in self._deadlines.items() if at <= now)
            self._busy = True
            try:
                while self._dirty and not self._stopping and self.may_act():
                    cuid = self._dirty.pop()
                    try:
                        await self._reconcile(cuid)
                    except Exception:  # one client's failure must not stop the others' enforcement
                        log.exception("ACL enforcement for %s failed", cuid)
            finally:
                self._busy = False

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        """A read of the data channel's store: in a worker thread when each is a network round trip (PostgreSQL),
        which may wait for the store's timeout; the reconciliations stay one at a time (this task)."""
        if getattr(self.source, "remote", False):
            return await asyncio.to_thread(function, *args)
        return function(*args)

    def _owner(self, cuid: str) -> str | None:
        client = self.authorize(cuid)
        return client.name if client is not None else None

    async def _reconcile(self, cuid: str) -> None:
        now = self.clock()
        acls = await self._read(self.source.acls_for, cuid)
        if not acls and cuid not in self._enforced:
            self._without_acls.add(cuid)
        wanted = acls_to_enforce(acls, self.mitigating(cuid), now)
        enforced = self._enforced.setdefault(cuid, {})
        change = plan_change(list(enforced.values()), wanted)
        deadline = next_expiry(acls, now)
        if deadline is None:
            self._deadlines.pop(cuid, None)
        else:
            self._deadlines[cuid] = deadline
        for key in change.withdraw:
            enforced.pop(key, None)
            self.refused.pop(key, None)
            if self.actuator is None:  # a refused ACL is recorded too, but without an actuator nothing was placed
                continue
            try:
                await self.actuator.withdraw_acl(key)
            except MitigatorError as problem:
                log.error("could not withdraw ACL %s: %s", key, problem)
        for acl in change.apply:
            key = acl_key(acl)
            enforced[key] = acl  # recorded even when refused: whatever part was placed gets withdrawn later
            problem = await self._apply(acl)
            if problem is None:
                self.refused.pop(key, None)
                log.info("ACL %s (%s) enforced", key, acl.activation_type)
            else:
                self.refused[key] = problem
                log.error("ACL %s is not enforced: %s", key, problem)
        if not enforced:
            del self._enforced[cuid]

    def problem_with(self, acl: Acl) -> str | None:
        """Why ACL could not be enforced by our mitigators, found without touching them (None: it can be)."""
        policy = self._policy(acl)
        if isinstance(policy, str):
            return policy
        if isinstance(self.mitigator, AclPlanner) and not self.mitigator.can_enforce_acl(policy):
            return f"no configured mitigator can enforce ACL {policy.key}"
        return None

    def _policy(self, acl: Acl) -> AclPolicy | str:
        if self.actuator is None:
            return f"mitigator {self.mitigator.name} cannot enforce ACLs"
        client = self.authorize(acl.cuid)
        if client is None or not client.prefixes:
            return "the client has no authorized prefixes to confine the ACL to"
        try:
            return policy_from_record(acl, tuple(client.prefixes))
        except MitigatorError as problem:
            return str(problem)

    async def _apply(self, acl: Acl) -> str | None:
        policy = self._policy(acl)
        if isinstance(policy, str):
            return policy
        assert self.actuator is not None  # _policy found one
        try:
            await self.actuator.apply_acl(policy)
        except MitigatorError as problem:
            return str(problem)
        return None


class DataChannelAclControl:
    """RFC 9133 filter control on the data channel's service: what the core reads (AclActivationControl), and where
    the shell stores the changes a decision carries (AclActivationStore). A change is stored like a data-channel
    refresh, and the service's subscribers (the AclEnforcer) enforce it at once."""

    def __init__(
        self, service: DataChannelCore, enforcer: AclEnforcer | None = None, reads: EntryReader | None = None
    ) -> None:
        self.service = service
        self.enforcer = enforcer
        self.reads: EntryReader = reads or service.store
        """Where the core's reads go (opendots.signal.server.shell.data_reads: fetched off the loop beforehand)."""

    def acl_exists(self, cuid: str, name: str, now: float) -> bool:
        return self.reads.get_acl(cuid, name, now) is not None

    def activation_type(self, cuid: str, name: str, now: float) -> str | None:
        stored = self.reads.get_acl(cuid, name, now)
        return stored.body.get("activation-type", WHEN_MITIGATING) if stored is not None else None

    def enforcement_problem(self, cuid: str, name: str, activation_type: str, now: float) -> str | None:
        if activation_type == DEACTIVATE or self.enforcer is None:
            return None
        stored = self.reads.get_acl(cuid, name, now)
        if stored is None:
            return f"ACL {name!r} expired"
        return self.enforcer.problem_with(Acl.from_json(cuid, stored.body, stored.expires))

    def set_activation(self, activation: AclActivation, now: float) -> None:
        cuid, name = activation.cuid, activation.name
        if not self.service.set_acl_activation(cuid, name, activation.activation_type, now, refresh_lifetime=True):
            raise LookupError(f"ACL {name!r} of {cuid} vanished")  # expired between the decision and the change

    async def set_activation_async(self, activation: AclActivation, now: float) -> None:
        """`set_activation` with a remote store's write in a worker thread (the loop serves everyone else
        meanwhile); the listeners (the ACL enforcer, observers) are told on the loop once it is stored."""
        service, store = self.service, self.service.store
        if not getattr(store, "remote", False):
            self.set_activation(activation, now)
            return
        cuid, name, kind = activation.cuid, activation.name, activation.activation_type
        expires = service.acl_activation_expiry(kind, now, refresh_lifetime=True)
        if not await asyncio.to_thread(store.set_acl_activation, cuid, name, kind, expires, now):
            raise LookupError(f"ACL {name!r} of {cuid} vanished")
        service.client_changed(cuid)
