"""I/O around the signal-channel core: the asyncio service (timers, mitigator, notifications).

The CoAP resources (aiocoap Site under /.well-known/dots) plug into SignalService.handle().
"""

from opendots.signal.server.shell.service import NameResolver, SignalService, SystemResolver

__all__ = ["NameResolver", "SignalService", "SystemResolver"]
