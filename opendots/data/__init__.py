"""The DOTS data channel (RFC 8783): RESTCONF server and client."""
