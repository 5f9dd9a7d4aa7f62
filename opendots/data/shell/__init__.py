"""I/O around the data channel core: the aiohttp mutual-TLS server (server.py), how it runs the core off the loop
and commits its writes (runner.py), and the [data] table of server.toml (settings.py)."""
