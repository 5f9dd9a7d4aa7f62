"""Q-Block1/Q-Block2 (RFC 9177): robust block-wise transfer of large CoAP bodies over NON messages.

A sans-I/O engine: no sockets, no asyncio, no clock of its own. The shell feeds it the Q-Block options and payloads
it receives together with `now`, and sends what comes back (payloads to transmit, responses, requests for missing
blocks), calls `poll(now)` at `next_deadline()`, and takes completed bodies. Nothing in it is specific to DOTS.

- `Q1Sender` / `Q1Receiver`: a request body (client → server), `Q2Responses` (`Q2Sender`) / `Q2Receiver`: a response
  body (server → client);
- `QBlockParameters`: MAX_PAYLOADS, NON_TIMEOUT, NON_RECEIVE_TIMEOUT, NON_MAX_RETRANSMIT, NON_PROBING_WAIT and
  NON_PARTIAL_TIMEOUT (RFC 9177 §7.2), per peer; `QBlockLimits`: local memory bounds; `ProbingPacer`: PROBING_RATE
  for bodies to a peer that does not answer.
"""

from opendots.transport.qblock.events import (
    AlreadyComplete,
    BodyAbandoned,
    BodyComplete,
    Rejected,
    RequestBlocks,
    Respond,
    SendBlock,
)
from opendots.transport.qblock.options import (
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
from opendots.transport.qblock.pacing import ProbingPacer
from opendots.transport.qblock.params import QBlockLimits, QBlockParameters
from opendots.transport.qblock.q1_receiver import Q1Receiver
from opendots.transport.qblock.q2_receiver import Q2Receiver
from opendots.transport.qblock.responses import Q2Responses, is_recovery
from opendots.transport.qblock.sender import Q1Sender, Q2Sender

__all__ = [
    "MISSING_BLOCKS_CONTENT_FORMAT",
    "QBLOCK1",
    "QBLOCK2",
    "AlreadyComplete",
    "BlockOption",
    "BodyAbandoned",
    "BodyComplete",
    "OpaqueCounter",
    "ProbingPacer",
    "Q1Receiver",
    "Q1Sender",
    "Q2Receiver",
    "Q2Responses",
    "Q2Sender",
    "QBlockError",
    "QBlockLimits",
    "QBlockParameters",
    "Rejected",
    "RequestBlocks",
    "Respond",
    "SendBlock",
    "decode_missing",
    "encode_missing",
    "is_recovery",
    "szx_for",
]
