"""RFC 9132 Appendix C recommended/default values, defined once for the whole code base.

Everything else (session configuration, lifetimes, active-but-terminating period) reads them from here.
"""

from __future__ import annotations

from decimal import Decimal

# Mitigation requests (§4.4.1.1, §4.4.4).
LIFETIME = 3600
INDEFINITE_LIFETIME = -1
ACTIVE_BUT_TERMINATING = 120
MAX_ACTIVE_BUT_TERMINATING = 300
TRIGGER_MITIGATION = True
# Table 3: a preconfigured request (trigger-mitigation false) whose attack stopped (3), or that was withdrawn for an
# overlapping immediate request (7), has that status "transmitted four times and then transition[s] to '8'". The RFC
# does not space them; notifications are Non-confirmable, so they go ANNOUNCE_INTERVAL seconds apart.
ANNOUNCE_TIMES = 4
ANNOUNCE_INTERVAL = 2.0

# Session configuration (§4.5.2).
HEARTBEAT_INTERVAL = 30
MIN_HEARTBEAT_INTERVAL = 15
MAX_HEARTBEAT_INTERVAL = 240
MISSING_HB_ALLOWED = 15
MAX_RETRANSMIT = 3
ACK_TIMEOUT = Decimal("2.00")
ACK_RANDOM_FACTOR = Decimal("1.50")
PROBING_RATE = 5

# The RFC recommends no minimum/maximum for these; the acceptable ranges below are those of the
# example server in RFC 9132 Figure 20, a sane policy an operator can override.
MIN_MISSING_HB_ALLOWED, MAX_MISSING_HB_ALLOWED = 3, 20
MIN_PROBING_RATE, MAX_PROBING_RATE = 5, 20
MIN_MAX_RETRANSMIT, MAX_MAX_RETRANSMIT = 2, 15
MIN_ACK_TIMEOUT, MAX_ACK_TIMEOUT = Decimal("1.00"), Decimal("30.00")
MIN_ACK_RANDOM_FACTOR, MAX_ACK_RANDOM_FACTOR = Decimal("1.10"), Decimal("4.00")

# Largest 'mid' the client may use before rolling over (§4.4.1.1); values above are still valid uint32.
MID_ROLLOVER = 3221225471
UINT32_MAX = 2**32 - 1
