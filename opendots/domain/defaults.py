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

# RFC 9362 robust-transmission attributes (the Q-Block parameters of RFC 9177 §7.2). Only max-payloads has a fixed
# default; the others follow the parameters above unless a client sets them (RFC 9362 §3, Implementation Note 2):
# non-max-retransmit = max-retransmit, non-timeout = ack-timeout, non-receive-timeout = 2 x non-timeout, and
# non-probing-wait / non-partial-timeout = non-timeout x (2^non-max-retransmit - 1) x ack-random-factor
# + 2 x MAX_LATENCY + non-timeout: 223 s with DOTS's max-retransmit of 3 (the YANG module's "247.00" assumes CoAP's 4).
MAX_PAYLOADS = 10
MAX_LATENCY = Decimal("100")  # RFC 7252 §4.8.2, seconds
# No recommended ranges either: these keep a burst, and the time a half-received body is held, bounded.
MIN_MAX_PAYLOADS, MAX_MAX_PAYLOADS = 1, 50
MIN_NON_MAX_RETRANSMIT, MAX_NON_MAX_RETRANSMIT = 1, 15
MIN_NON_TIMEOUT, MAX_NON_TIMEOUT = Decimal("1.00"), Decimal("30.00")
MIN_NON_RECEIVE_TIMEOUT, MAX_NON_RECEIVE_TIMEOUT = Decimal("1.00"), Decimal("300.00")
MIN_NON_PROBING_WAIT, MAX_NON_PROBING_WAIT = Decimal("10.00"), Decimal("600.00")
MIN_NON_PARTIAL_TIMEOUT, MAX_NON_PARTIAL_TIMEOUT = Decimal("10.00"), Decimal("600.00")

# Largest 'mid' the client may use before rolling over (§4.4.1.1); values above are still valid uint32.
MID_ROLLOVER = 3221225471
UINT32_MAX = 2**32 - 1
