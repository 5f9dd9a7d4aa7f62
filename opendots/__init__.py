"""OpenDOTS: DDoS Open Threat Signaling (RFC 9132, RFC 8783 and extensions) client, server and gateway."""

__version__ = "0.1.0"
