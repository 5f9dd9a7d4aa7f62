"""The DOTS gateway (RFC 8811 §2.2.3, RFC 9132 §4.4.1): a back-to-back DOTS agent, a DOTS server toward its
downstream clients and a DOTS client toward one upstream server, for the signal channel.

hoplimit.py (RFC 8768 rules) and relay.py (mid mapping, 'cdid' insertion, upstream-loss answers, body rewriting)
are sans-I/O; store.py keeps the relay's mapping in SQLite; shell.py runs both legs (the server shell downstream,
the client agent upstream) on one event loop; config.py reads gw.toml.
"""
