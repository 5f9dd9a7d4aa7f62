"""The mitigator lease's fence (several nodes on one PostgreSQL database, issue #18): a holder stops driving VALID
seconds after the send time of its last good check, a successor starts GRACE seconds after it took the lock, so
two nodes never drive at once, whenever the holder's session ended and whenever it noticed."""

from __future__ import annotations

from opendots.signal.server.shell.lease_fence import GRACE, VALID, LeaseFence


def test_a_holder_drives_only_until_valid_seconds_after_its_last_good_check():
    fence = LeaseFence()
    assert not fence.valid(0.0)  # no lock, no driving
    fence.taken(0.0)
    assert not fence.valid(GRACE - 0.01)  # the grace first
    fence.confirmed(GRACE)
    assert fence.valid(GRACE) and fence.valid(GRACE + VALID - 0.01)
    assert not fence.valid(GRACE + VALID)  # no check came back since: it stops by itself
    fence.confirmed(GRACE + VALID + 1)  # a late check that succeeds: the lock was kept, it drives again
    assert fence.valid(GRACE + VALID + 1)
    fence.lost()
    assert not fence.valid(GRACE + VALID + 1)


def test_no_moment_has_two_drivers_whenever_the_holders_session_ends():
    """The holder's last good check was sent at S (its session alive after S); the session ends at T >= S, however
    late the holder learns it; the successor takes the lock at A >= T. Checked on a grid of 10 ms steps."""
    step = 0.01
    for ends in range(0, 400, 7):  # T - S
        for taken in range(0, 300, 11):  # A - T
            holder, successor = LeaseFence(), LeaseFence()
            holder.taken(-GRACE)
            holder.confirmed(0.0)  # S = 0
            took = ends * step + taken * step
            successor.taken(took)
            for tick in range(0, 1200):
                now = tick * step
                if now >= took:
                    successor.confirmed(now)  # its own session is fine: every check succeeds
                assert not (holder.valid(now) and successor.valid(now)), (ends, taken, now)
            assert successor.valid(took + GRACE)  # and it does take over


def test_the_grace_leaves_time_for_a_mitigator_call_started_at_the_deadline():
    assert GRACE - VALID >= 1.0
