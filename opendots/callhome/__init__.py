"""RFC 9066 DOTS Call Home: the Call Home DOTS server (cpe.py) dials the Call Home DOTS client (provider.py)."""
