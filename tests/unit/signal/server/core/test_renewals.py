"""The renewal shortcut (opendots.signal.server.core.renewals, taken by MitigationRequests._put) answers a pure renewal
(RFC 9132 §4.4.1: the same request repeated to renew its lifetime) exactly as the general refresh does: two servers,
one with the shortcut off, driven through the same seeded sequences of PUTs (the same body, another lifetime,
another body, another client, efficacy updates), GETs, DELETEs, heartbeats, mitigators' status reports, time passing
(refreshes, expiry, a lost session), and operator reloads narrowing the domain, give the same answers, the same
writes and events, and hold the same mitigations, with renewal_slack 0 and 30. A refresh naming RFC 9133 ACLs is
never one (it sets their activation again)."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from opendots.model import encode_signal
from opendots.signal.server.core import Request, Response
from opendots.signal.server.core.events import MitigationChanged
from opendots.signal.server.core.messages import HEARTBEAT, Status
from opendots.signal.server.shell.durable import settle
from tests.helpers.acl_harness import FIGURE_7_ACL, FIGURE_8, T0, Harness, harness
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    make_harness,
    mitigate_path,
    scope_body,
)

__all__ = ["harness"]  # the RFC 9133 fixture

NARROWED = dataclasses.replace(ALPHA, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))
BODIES = [
    scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600),
    scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=60),
    scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600, attack_status="under-attack"),
    scope_body(target_prefix=["2001:db8:6401:1::/64"], lifetime=600),
    scope_body(target_prefix=["2001:db8:6401:2::/64"], lifetime=120, trigger_mitigation=False),
    scope_body(target_prefix=["2001:db8:6401:2::/64"], lifetime=-1),
    scope_body(target_prefix=["192.0.2.0/28"], lifetime=600),
]


class Twin:
    """One server of the pair: its harness and the decision data of the last step."""

    def __init__(self, tmp_path: Path, slack: float, shortcut: bool) -> None:
        self.harness = make_harness(tmp_path, renewal_slack=slack)
        self.harness.server.mitigation_requests.renewal_shortcut = shortcut

    def request(self, request: Request, now: float) -> tuple[Any, ...]:
        self.harness.now = now
        decision = self.harness.server.handle(request, now)
        written = (dataclasses.asdict(decision.changes), list(decision.acl_activations))
        response, events = settle(self.harness.server, self.harness.store, decision, now)
        return _shown(response), written, _events(events)

    def state(self) -> tuple[Any, ...]:
        server = self.harness.server
        held = sorted(
            (
                m.key,
                m.record,
                m.targets,
                m.stored_expiry,
                m.authorized_for,
                m.payload,
                m.conflict,
                m.request.document,
            )
            for m in server.table
        )
        return held, server.next_timer(), self.harness.dump()


def _events(events: list[Any]) -> list[Any]:
    """EVENTS comparable across servers: a MitigationChanged by the notification it renders."""
    return [
        (event.client, event.cuid, event.mid, event.status, event.render())
        if isinstance(event, MitigationChanged)
        else event
        for event in events
    ]


def _shown(response: Response | None) -> tuple[Any, ...] | None:
    if response is None:
        return None
    body = dict(response.body) if isinstance(response.body, dict) else response.body
    return response.code, body, response.diagnostic, response.silent, response.observable


def _step(rng: random.Random, last: dict[int, bytes]) -> tuple[str, Any]:
    roll = rng.random()
    mid = rng.choice((1, 2))
    if roll < 0.35 and mid in last:
        return "request", Request("PUT", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID, payload=last[mid])
    if roll < 0.5:
        payload = encode_signal(rng.choice(BODIES), validate=False)
        last[mid] = payload
        return "request", Request("PUT", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID, payload=payload)
    if roll < 0.55:
        payload = encode_signal(rng.choice(BODIES), validate=False)
        cuid = rng.choice((ALPHA_CUID, BRAVO_CUID))
        return "request", Request("PUT", mitigate_path(cuid, mid), peer=BRAVO_CUID, payload=payload)
    if roll < 0.6:
        body = scope_body(
            target_prefix=["2001:db8:6401::/64"],
            attack_status=rng.choice(("under-attack", "attack-successfully-mitigated")),
        )
        lifetime = rng.choice((None, 600, 3600))  # 600: the lifetime held, so only the request stored changes
        if lifetime is None:
            del body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["lifetime"]
        else:
            body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["lifetime"] = lifetime
        payload = encode_signal(body, validate=False)
        path = mitigate_path(ALPHA_CUID, mid)
        return "request", Request("PUT", path, peer=ALPHA_CUID, payload=payload, if_match_empty=True)
    if roll < 0.65:
        return "request", Request("GET", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID)
    if roll < 0.7:
        return "request", Request("DELETE", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID)
    if roll < 0.76:
        payload = encode_signal({HEARTBEAT: {"peer-hb-status": True}})
        return "request", Request("PUT", ("hb",), peer=ALPHA_CUID, payload=payload)
    if roll < 0.82:
        return "report", (f"{ALPHA_CUID}/{mid}", Status(rng.choice((1, 2, 3, 4))))
    if roll < 0.86:
        return "reload", rng.choice((NARROWED, dataclasses.replace(ALPHA)))
    if roll < 0.97:
        return "advance", rng.choice((1.0, 5.0, 20.0, 29.0, 31.0, 100.0))
    return "advance", rng.choice((200.0, 700.0))


def _agree(tmp_path: Path, slack: float, steps: list[tuple[str, Any, float]], label: str) -> None:
    """Drive both servers through STEPS (kind, argument, seconds after) and compare them after each."""
    for name in ("on", "off"):
        (tmp_path / name).mkdir()
    twins = [Twin(tmp_path / "on", slack, True), Twin(tmp_path / "off", slack, False)]
    now = twins[0].harness.now
    for number, (kind, argument, later) in enumerate(steps):
        outcomes = []
        for twin in twins:
            harness = twin.harness
            harness.now = now
            if kind == "request":
                outcome: Any = twin.request(argument, now)
            elif kind == "report":
                outcome = _events(harness.report_status(*argument))
            elif kind == "reload":
                outcome = harness.server.set_clients([argument, BRAVO])
            else:
                outcome = _events(harness.advance(argument))
            outcomes.append((outcome, twin.state()))
        now += argument if kind == "advance" else later
        assert outcomes[0] == outcomes[1], f"{label}, step {number}: {kind} {argument!r}"


@pytest.mark.parametrize("slack", [0.0, 30.0])
@pytest.mark.parametrize("seed", range(30))
def test_a_renewal_by_the_shortcut_is_answered_stored_notified_and_held_as_the_general_refresh_rfc9132_4_4_1(
    tmp_path: Path, slack: float, seed: int
):
    rng = random.Random(seed)
    last: dict[int, bytes] = {}
    steps = []
    for _ in range(200):
        kind, argument = _step(rng, last)
        steps.append((kind, argument, rng.choice((0.0, 0.0, 0.0, 0.5, 1.0))))  # often none: renewals stored
    _agree(tmp_path, slack, steps, f"seed {seed}")


def _put(body: dict[str, Any], mid: int = 1, **kw: Any) -> tuple[str, Request, float]:
    payload = encode_signal(body, validate=False)
    return "request", Request("PUT", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID, payload=payload, **kw), 0.0


def _efficacy(attack_status: str, lifetime: int | None, *details: dict[str, Any]) -> tuple[str, Request, float]:
    body = scope_body(target_prefix=["2001:db8:6401::/64"], attack_status=attack_status)
    entry = body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]
    if details:
        entry["ietf-dots-telemetry:attack-detail"] = list(details)
    if lifetime is None:
        del entry["lifetime"]
    else:
        entry["lifetime"] = lifetime
    return _put(body, if_match_empty=True)


TALKERS = {"vendor-id": 0, "attack-id": 2, "top-talker": {"talker": [{"source-prefix": "198.51.100.9/32"}]}}
DELETE = ("request", Request("DELETE", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID), 0.0)
SCENARIOS = {
    # Each: created, renewed once (its client now remembered), changed in what a renewal must not skip, then the
    # same bytes again at the same instant (the store's expiry still covers it).
    "revived during active-but-terminating": [_put(BODIES[0]), _put(BODIES[0]), DELETE, _put(BODIES[0])],
    "attack-status changed by an efficacy update": [
        _put(BODIES[2]),
        _put(BODIES[2]),
        _efficacy("attack-successfully-mitigated", None),
        _put(BODIES[2]),
    ],
    "request changed by an efficacy update": [
        _put(BODIES[0]),
        _put(BODIES[0]),
        _efficacy("under-attack", 600),
        _put(BODIES[0]),
    ],
    "telemetry replaced by an efficacy update (RFC 9244 §9.1)": [
        _put(BODIES[0]),
        _put(BODIES[0]),
        _efficacy("under-attack", None, TALKERS),
        _put(BODIES[0]),
    ],
    "domain narrowed by a reload": [_put(BODIES[0]), _put(BODIES[0]), ("reload", NARROWED, 0.0), _put(BODIES[0])],
    "another client object with the same domain": [
        _put(BODIES[0]),
        _put(BODIES[0]),
        ("reload", dataclasses.replace(ALPHA), 0.0),
        _put(BODIES[0]),
    ],
    "status reported by the mitigator": [
        _put(BODIES[0]),
        _put(BODIES[0]),
        ("report", (f"{ALPHA_CUID}/1", Status.ATTACK_SUCCESSFULLY_MITIGATED), 0.0),
        _put(BODIES[0]),
    ],
}


@pytest.mark.parametrize("slack", [0.0, 30.0])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_renewal_after_a_change_at_the_same_instant_is_handled_as_the_general_refresh_rfc9132_4_4_1(
    tmp_path: Path, slack: float, scenario: str
):
    _agree(tmp_path, slack, SCENARIOS[scenario], scenario)


def test_a_pure_renewal_takes_the_shortcut_and_writes_nothing_rfc9132_4_4_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    harness = make_harness(tmp_path, renewal_slack=30.0)
    requests = harness.server.mitigation_requests
    general: list[object] = []
    real = requests._refresh
    monkeypatch.setattr(requests, "_refresh", lambda *args: general.append(args) or real(*args))
    body = BODIES[0]
    assert harness.put(1, body).code == "2.01"
    harness.now += 1
    assert harness.put(1, body).code == "2.04"  # the first refresh: written ahead by the slack, the general way
    assert len(general) == 1
    for _ in range(10):
        harness.now += 1
        payload = encode_signal(body, validate=False)
        decision = harness.server.handle(
            Request("PUT", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID, payload=payload), harness.now
        )
        assert not decision.stores and not decision.events
        response, _ = settle(harness.server, harness.store, decision, harness.now)
        assert response is not None and response.code == "2.04"
    assert len(general) == 1  # every later renewal within the slack took the shortcut
    held = harness.server.table.get((ALPHA_CUID, 1))
    assert held is not None and held.record.expires_at == harness.now + 600
    harness.now += 30  # past the slack: the store must learn the new expiry, the general way
    assert harness.put(1, body).code == "2.04"
    assert len(general) == 2


def test_a_refresh_naming_acls_sets_their_activation_again_so_it_never_takes_the_shortcut_rfc9133_3_2_1(
    harness: Harness,
):
    """The same bytes again, but the client deactivated the ACL they name over the data channel meanwhile: the
    refresh's 'acl-list' activates it again (RFC 9133 §3.2.1), which only the general path does."""
    core = harness.core.core
    core.settings = dataclasses.replace(core.settings, renewal_slack=30.0)  # renewals within 30 s write nothing
    acl = {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]}  # its activation-type: deactivate
    harness.rest("PUT", f"/dots-client={harness.cuid}/acls/acl=my-accept-list", acl, T0)
    request = Request(
        "PUT", mitigate_path(harness.cuid, 4879), peer=harness.cuid, payload=encode_signal(FIGURE_8, validate=False)
    )
    for later in (0, 1, 2):  # created, then refreshed twice: from the second on, a renewal if ACLs were not named
        response, _ = harness.core.handle(request, T0 + later)
        assert response.code in ("2.01", "2.04") and harness.activation("my-accept-list") == "immediate"
    harness.rest("PUT", f"/dots-client={harness.cuid}/acls/acl=my-accept-list", acl, T0 + 3)
    assert harness.activation("my-accept-list") == "deactivate"
    response, _ = harness.core.handle(request, T0 + 4)
    assert response.code == "2.04" and harness.activation("my-accept-list") == "immediate"
