"""Q-Block1/Q-Block2 option values and the missing-blocks payload (RFC 9177 §4.2, §5, §12).

The option values have the structure of Block1/Block2 (RFC 7959 §2.2): NUM, the M bit and SZX packed in a uint of
0-3 bytes. SZX 7 (BERT, RFC 8323) is refused: Q-Block is meant for NON over UDP/DTLS, where BERT does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

QBLOCK1 = 19  # RFC 9177 §12.1, Table 4
QBLOCK2 = 31
MISSING_BLOCKS_CONTENT_FORMAT = 272  # application/missing-blocks+cbor-seq, RFC 9177 §12.3
MAX_NUM = (1 << 20) - 1  # NUM takes at most 20 bits in a 3-byte option value


class QBlockError(ValueError):
    """Input the peer got wrong: CODE is the CoAP response that tells it so (4.00, 4.13, 5.03...)."""

    def __init__(self, code: str, diagnostic: str) -> None:
        super().__init__(f"{code} {diagnostic}")
        self.code = code
        self.diagnostic = diagnostic


@dataclass(frozen=True, order=True)
class BlockOption:
    """One Q-Block1/Q-Block2 option value: block NUM, the More bit and the size exponent SZX (size 2**(SZX+4))."""

    num: int
    more: bool
    szx: int

    def __post_init__(self) -> None:
        if not 0 <= self.szx <= 6:
            raise QBlockError("4.00", f"Q-Block SZX {self.szx} is not 0-6 (BERT is not used with Q-Block)")
        if not 0 <= self.num <= MAX_NUM:
            raise QBlockError("4.00", f"Q-Block NUM {self.num} does not fit the option")

    @property
    def size(self) -> int:
        return 16 << self.szx

    def encode(self) -> bytes:
        value = (self.num << 4) | (int(self.more) << 3) | self.szx
        return value.to_bytes((value.bit_length() + 7) // 8, "big")  # 0 is the empty value (RFC 7252 §3.2)

    @classmethod
    def decode(cls, raw: bytes) -> BlockOption:
        if len(raw) > 3:
            raise QBlockError("4.02", f"a Q-Block option of {len(raw)} bytes (at most 3)")
        value = int.from_bytes(raw, "big")
        return cls(value >> 4, bool(value & 0x8), value & 0x7)

    def __str__(self) -> str:  # libcoap's notation, e.g. 3/M/1024, so traces compare at a glance
        return f"{self.num}/{'M' if self.more else '_'}/{self.size}"


def szx_for(size: int) -> int:
    """The SZX of a block SIZE (a power of two from 16 to 1024)."""
    if size < 16 or size > 1024 or size & (size - 1):
        raise ValueError(f"a block size must be a power of two from 16 to 1024, not {size}")
    return size.bit_length() - 5


def encode_missing(numbers: list[int]) -> bytes:
    """A CBOR Sequence of unsigned integers (RFC 9177 §5, Figure 1: no array wrapper), ascending, no duplicates."""
    out = bytearray()
    previous = -1
    for number in numbers:
        if number <= previous:
            raise ValueError("missing block numbers must be ascending without duplicates (RFC 9177 §5)")
        previous = number
        if number < 24:
            out.append(number)
        elif number < 0x100:
            out += bytes((0x18, number))
        elif number < 0x10000:
            out += b"\x19" + number.to_bytes(2, "big")
        else:
            out += b"\x1a" + number.to_bytes(4, "big")
    return bytes(out)


_WIDTHS = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}


def decode_missing(payload: bytes) -> list[int]:
    """Parse a missing-blocks CBOR Sequence; anything but ascending unique uints raises QBlockError (the client
    then drops the whole 4.08, RFC 9177 §5). Linear in the payload, no CBOR library needed for one major type."""
    numbers: list[int] = []
    i = 0
    while i < len(payload):
        head = payload[i]
        i += 1
        if head < 24:
            number = head
        elif head in _WIDTHS:
            width = _WIDTHS[head]
            if i + width > len(payload):
                raise QBlockError("4.00", "a missing-blocks sequence ends inside a number")
            number = int.from_bytes(payload[i : i + width], "big")
            i += width
        else:
            raise QBlockError("4.00", f"a missing-blocks item of CBOR type {head >> 5} (only unsigned integers)")
        if numbers and number <= numbers[-1]:
            raise QBlockError("4.00", "missing block numbers not ascending or repeated (RFC 9177 §5)")
        numbers.append(number)
    if not numbers:
        raise QBlockError("4.00", "an empty missing-blocks sequence (RFC 9177 §5 wants one or more)")
    return numbers


class OpaqueCounter:
    """Request-Tag / ETag values as RFC 9177 §4.3 and §4.4 suggest: a random start, then +1 per new body."""

    def __init__(self, start: int, width: int = 4) -> None:
        self._width = width
        self._next = start % (1 << (8 * width))

    def next(self) -> bytes:
        value = self._next
        self._next = (value + 1) % (1 << (8 * self._width))
        return value.to_bytes(self._width, "big")
