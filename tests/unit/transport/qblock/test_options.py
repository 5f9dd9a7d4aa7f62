"""RFC 9177 §4.2, §5, §12: the Q-Block option numbers and values, and the missing-blocks CBOR Sequence."""

from __future__ import annotations

import random

import cbor2
import pytest
from aiocoap.numbers.optionnumbers import OptionNumber

from opendots.transport.qblock import (
    MISSING_BLOCKS_CONTENT_FORMAT,
    QBLOCK1,
    QBLOCK2,
    BlockOption,
    OpaqueCounter,
    QBlockError,
    decode_missing,
    encode_missing,
    szx_for,
)


def test_option_numbers_and_content_format_are_those_iana_registered_in_rfc_9177_section_12() -> None:
    assert (QBLOCK1, QBLOCK2, MISSING_BLOCKS_CONTENT_FORMAT) == (19, 31, 272)
    assert (OptionNumber.Q_BLOCK1, OptionNumber.Q_BLOCK2) == (QBLOCK1, QBLOCK2)  # aiocoap agrees
    # Both are critical and unsafe (RFC 9177 §4.1, Table 1); only Q-Block2 is repeatable, which aiocoap cannot know.
    assert OptionNumber(QBLOCK1).is_critical() and OptionNumber(QBLOCK1).is_unsafe()
    assert OptionNumber(QBLOCK2).is_critical() and OptionNumber(QBLOCK2).is_unsafe()


@pytest.mark.parametrize(
    ("option", "raw"),
    [
        (BlockOption(0, False, 0), b""),  # value 0 is the empty option (RFC 7252 §3.2)
        (BlockOption(0, True, 6), b"\x0e"),
        (BlockOption(3, False, 6), b"\x36"),
        (BlockOption(10, True, 6), b"\xae"),
        (BlockOption(300, True, 2), b"\x12\xca"),
        (BlockOption((1 << 20) - 1, True, 6), b"\xff\xff\xfe"),
    ],
)
def test_option_values_pack_num_m_and_szx_like_block1_and_block2(option: BlockOption, raw: bytes) -> None:
    assert option.encode() == raw
    assert BlockOption.decode(raw) == option


def test_option_values_print_in_libcoaps_notation_so_traces_compare() -> None:
    assert str(BlockOption(3, True, 6)) == "3/M/1024"
    assert str(BlockOption(0, False, 0)) == "0/_/16"


@pytest.mark.parametrize("raw", [b"\x0f", b"\x00\x00\x00\x01", b"\x01\x02\x03\x04"])
def test_an_option_value_with_szx_7_or_longer_than_three_bytes_is_refused(raw: bytes) -> None:
    with pytest.raises(QBlockError) as error:
        BlockOption.decode(raw)
    assert error.value.code in {"4.00", "4.02"}


def test_block_sizes_map_to_szx_and_other_sizes_are_refused() -> None:
    assert [szx_for(16 << n) for n in range(7)] == list(range(7))
    for size in (0, 8, 100, 2048):
        with pytest.raises(ValueError):
            szx_for(size)


def test_missing_blocks_encode_as_a_cbor_sequence_without_array_wrapper_byte_for_byte_as_cbor2_does() -> None:
    numbers = [0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 20]
    assert encode_missing(numbers) == b"".join(cbor2.dumps(n) for n in numbers)
    assert decode_missing(encode_missing(numbers)) == numbers


def test_random_missing_lists_survive_a_round_trip() -> None:
    rng = random.Random(272)
    for _ in range(200):
        numbers = sorted(rng.sample(range(70000), rng.randint(1, 30)))
        assert decode_missing(b"".join(cbor2.dumps(n) for n in numbers)) == numbers


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "empty"),
        (b"\x61a", "CBOR type 3"),
        (b"\x20", "CBOR type 1"),
        (b"\x82\x01\x02", "CBOR type 4"),  # an array: §5 says no wrapper
        (b"\x19\x01", "ends inside"),
        (b"\x02\x01", "not ascending"),
        (b"\x01\x01", "not ascending or repeated"),
    ],
)
def test_a_malformed_missing_blocks_payload_is_refused_with_the_reason(payload: bytes, why: str) -> None:
    with pytest.raises(QBlockError) as error:
        decode_missing(payload)
    assert why in error.value.diagnostic


def test_missing_blocks_out_of_order_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_missing([3, 1])


def test_request_tags_start_anywhere_then_count_up_and_wrap() -> None:
    tags = OpaqueCounter(0xFFFFFFFE)
    assert [tags.next() for _ in range(3)] == [b"\xff\xff\xff\xfe", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]
