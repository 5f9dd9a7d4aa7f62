"""Duplicate detection without a timer per message (opendots.transport.dedup): the model check drives RecentMessages
against a brute-force reference (the same over real DTLS: tests/integration/transport/test_dedup.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.transport.dedup import RecentMessages


def test_a_message_is_remembered_for_its_lifetime_then_forgotten() -> None:
    recent = RecentMessages()
    recent.remember("a", now=10.0, lifetime=5.0)
    recent.remember("b", now=12.0, lifetime=5.0)
    recent.answered("a", "response to a")
    assert recent.expire(14.9) == 15.0 and "a" in recent and recent.responses["a"] == "response to a"
    assert recent.expire(15.0) == 17.0 and "a" not in recent and "b" in recent
    recent.answered("a", "too late")  # forgotten: an answer does not bring it back
    assert "a" not in recent
    assert recent.expire(100.0) is None and len(recent) == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["remember", "answer", "expire"]), st.integers(0, 5), st.floats(0, 3)),
        max_size=60,
    )
)
def test_recent_messages_agree_with_a_brute_force_model(steps: list[tuple[str, int, float]]) -> None:
    """Any sequence of receptions, answers and expiries (time only moves forward, as the loop's clock does)."""
    recent, model = RecentMessages(), {}  # model: key -> [deadline, response]
    lifetime, now = 4.0, 0.0
    for action, key, step in steps:
        now += step
        if action == "remember":
            recent.expire(now)
            model = {k: v for k, v in model.items() if v[0] > now}
            if key not in model:  # the manager only remembers what is not a duplicate
                assert key not in recent
                recent.remember(key, now, lifetime)
                model[key] = [now + lifetime, None]
            else:
                assert key in recent
        elif action == "answer":
            recent.answered(key, f"response {now}")
            if key in model:
                model[key][1] = f"response {now}"
        else:
            following = recent.expire(now)
            model = {k: v for k, v in model.items() if v[0] > now}
            assert following == (min(v[0] for v in model.values()) if model else None)
        assert {k: v[1] for k, v in model.items()} == recent.responses
