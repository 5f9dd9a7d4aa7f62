"""The one error type of the data model: it carries the CoAP response code to answer with."""

from opendots.errors import UsageError

MAX_DIAGNOSTIC_LENGTH = 512  # keeps an error response within one datagram whatever the peer sent


class ModelError(UsageError):
    """A payload or body the data model cannot accept.

    ``code`` is the CoAP response code the signal layer should answer with (e.g. ``"4.00"``, ``"4.13"``);
    ``diagnostic`` is plain text safe to send to the peer as a diagnostic payload.
    """

    def __init__(self, code: str, diagnostic: str) -> None:
        if len(diagnostic) > MAX_DIAGNOSTIC_LENGTH:
            # Cut the middle: the start says where, the end says what went wrong.
            half = (MAX_DIAGNOSTIC_LENGTH - 3) // 2
            diagnostic = diagnostic[:half] + "..." + diagnostic[-half:]
        super().__init__(f"{code} {diagnostic}")
        self.code = code
        self.diagnostic = diagnostic
