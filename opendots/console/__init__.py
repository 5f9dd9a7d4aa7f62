"""The operator's web console served by `opendots server` when server.toml has a [dashboard] table (server.py)."""
