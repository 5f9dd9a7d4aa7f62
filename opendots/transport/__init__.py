"""CoAP transports for the DOTS signal channel: DTLS (pyOpenSSL) and TLS (RFC 8323, aiocoap).

Every non-public aiocoap name used by OpenDOTS is confined to `opendots.transport.aiocoap_hooks`.
"""
