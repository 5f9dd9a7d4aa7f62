"""Work stays linear in the body: a peer choosing the order of its blocks cannot make the receiver rescan the body
for every block (brief: no input may stall the server). Counted in block numbers looked at, not timed."""

from __future__ import annotations

import random

import pytest

from opendots.transport.qblock import BlockOption, BodyComplete, Q1Receiver, QBlockLimits, QBlockParameters, q1_receiver
from opendots.transport.qblock.body import Reassembly

COUNT = 1 << 16  # a 1 MiB body in 16-byte blocks


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled", "every_other_first", "first_last"])
def test_receiving_a_body_of_65536_blocks_in_any_order_looks_at_each_block_number_a_bounded_number_of_times(
    order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Reassembly] = []

    class Counted(Reassembly):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(q1_receiver, "Reassembly", Counted)
    nums = list(range(COUNT))
    if order == "descending":
        nums.reverse()
    elif order == "shuffled":
        random.Random(9177).shuffle(nums)
    elif order == "every_other_first":
        nums = nums[1::2] + nums[0::2]
    elif order == "first_last":  # block 0 lost until the end: every later set finds it still missing
        nums = nums[1:] + nums[:1]
    receiver = Q1Receiver(QBlockParameters(), QBlockLimits(max_body=COUNT * 16, max_blocks=COUNT))
    outputs = []
    for num in nums:
        option = BlockOption(num, num < COUNT - 1, 0)
        outputs += receiver.on_block(
            "p", token=b"t", request_tag=b"r", option=option, payload=bytes(16), size1=COUNT * 16, now=0.0
        )
    assert isinstance(outputs[-1], BodyComplete) and len(outputs[-1].body) == COUNT * 16
    assert made[0].scanned <= 2 * COUNT
