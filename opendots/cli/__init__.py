"""The `opendots` command line: one module per command group."""
