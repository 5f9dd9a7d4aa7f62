"""CoAP messages written by hand, as bytes (no socket: unit tests use them too, tests/helpers/raw_coap sends them)."""

from __future__ import annotations

CON, NON, ACK, RST = 0, 1, 2, 3
GET, PUT = 1, 3
DOTS = [(11, b".well-known"), (11, b"dots")]
CONFIG_GET = [*DOTS, (11, b"config")]


def coap(
    mtype: int, code: int, mid: int, token: bytes, options: list[tuple[int, bytes]], payload: bytes = b""
) -> bytes:
    """A CoAP message written by hand (options in the order given, which must be ascending)."""
    out = bytearray([0x40 | mtype << 4 | len(token), code, *mid.to_bytes(2, "big"), *token])
    previous = 0
    for number, value in options:
        delta, length = number - previous, len(value)
        fields = bytearray()
        nibbles = []
        for item in (delta, length):
            if item < 13:
                nibbles.append(item)
            elif item < 269:
                nibbles.append(13)
                fields.append(item - 13)
            else:
                nibbles.append(14)
                fields += (item - 269).to_bytes(2, "big")
        out += bytes([nibbles[0] << 4 | nibbles[1]]) + fields + value
        previous = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)
