"""The DOTS signal channel (RFC 9132 and its extensions): sans-I/O core, CoAP resources, client agent."""
