"""Sans-I/O data channel core (RFC 8783 over RFC 8040): no sockets, no event loop; it reads the store and returns
the writes it needs.

`DataChannelCore.decide(RestconfRequest, now)` answers a request; a successful write's `RestconfResponse` carries
the `Changes` to commit before it is sent, after which `committed(response)` tells the listeners.
`handle()` does all three on the calling thread. Modules by concern: messages (request/response), settings,
channel (entry point, DELETE), retrieval (GET), creation (POST), editing (PUT/PATCH and inner edits), validation
(limits, YANG, policy, domain conflicts), body (JSON parsing and the validation memo), shapes (body structure),
ordering (insert/point), paths, query, tree, policy, errors.
"""

from opendots.data.core.channel import DataChannelCore
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import RestconfRequest, RestconfResponse
from opendots.data.core.settings import DataChannelSettings

__all__ = ["DataChannelCore", "DataChannelSettings", "RestconfError", "RestconfRequest", "RestconfResponse"]
