"""What a server-domain DOTS gateway changes in the data channel it relays (RFC 8783 §3.3, §3.4, §5.1), sans-I/O.

- Via (RFC 7230 §5.7.1, RFC 8783 §3.4): a request whose Via already names this gateway is a loop: not forwarded,
  answered 508 (Loop Detected) with the RESTCONF error of RFC 8783 Figure 3; otherwise the gateway appends itself.
- 'cdid' (§5.1): a registration (POST of a 'dots-client', or PUT of one) relayed by a server-domain gateway
  carries the client's certificate SPKI hash as 'cdid'; one supplied by the client is replaced (RFC 9132
  §4.4.1.2: the first server-domain gateway strips it); the 'cdid' is stripped from what goes back (§5.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DOTS_CLIENT = "ietf-dots-data-channel:dots-client"
DOTS_DATA = "/restconf/data/ietf-dots-data-channel:dots-data"
VIA_PROTOCOL = "1.1"


@dataclass(frozen=True)
class ViaCheck:
    loop: bool
    via: str
    """The Via to forward (this gateway appended); when LOOP, the Via as received (error-info of the 508)."""


def check_via(received: str | None, identity: str) -> ViaCheck:
    """RFC 8783 §3.4 on the Via header field RECEIVED (None: absent)."""
    hops = [hop.strip() for hop in (received or "").split(",") if hop.strip()]
    for hop in hops:
        parts = hop.split()
        if len(parts) >= 2 and parts[1] == identity:
            return ViaCheck(True, received or "")
    return ViaCheck(False, ", ".join([*hops, f"{VIA_PROTOCOL} {identity}"]))


def loop_detected_body(via: str) -> dict[str, Any]:
    """RFC 8783 Figure 3."""
    return {
        "ietf-restconf:errors": {
            "error": [
                {
                    "error-type": "transport",
                    "error-tag": "operation-failed",
                    "error-app-tag": "loop-detected",
                    "error-info": via,
                    "error-message": "an infinite loop has been detected when forwarding a request via a proxy",
                }
            ]
        }
    }


def is_registration(method: str, path: str) -> bool:
    """POST to dots-data (create a 'dots-client') or PUT to dots-data/dots-client=CUID (§5.1)."""
    path = path.rstrip("/")
    if method == "POST":
        return path == DOTS_DATA
    if method == "PUT":
        rest = path[len(DOTS_DATA) :] if path.startswith(DOTS_DATA) else ""
        return rest.startswith("/dots-client=") and "/" not in rest[1:]
    return False


def with_cdid(body: bytes, cdid: str) -> bytes | None:
    """The registration BODY with 'cdid' set in its one 'dots-client' entry; None when BODY is not one (left to
    the server to refuse as it would refuse it directly)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    entries = document.get(DOTS_CLIENT) if isinstance(document, dict) else None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    entries[0] = {**entries[0], "cdid": cdid}
    return json.dumps(document, separators=(",", ":")).encode()


def without_cdid(body: bytes) -> bytes:
    """A response BODY without the 'cdid' of its 'dots-client' entries (§5.1), whether they stand at the top
    (GET of one client) or inside 'dots-data'; other bodies unchanged."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(document, dict):
        return body
    holders = [document]
    data = document.get("ietf-dots-data-channel:dots-data")
    if isinstance(data, dict):
        holders.append(data)
    changed = False
    for holder in holders:
        for key in (DOTS_CLIENT, "dots-client"):
            entries = holder.get(key)
            if isinstance(entries, list):
                for entry in entries:
                    if isinstance(entry, dict) and entry.pop("cdid", None) is not None:
                        changed = True
    return json.dumps(document, separators=(",", ":")).encode() if changed else body
