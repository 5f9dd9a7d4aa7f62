"""Persistent state behind small interfaces: SQLite is the embedded default."""
