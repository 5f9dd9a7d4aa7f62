"""Shared test support (not collected as tests): harnesses, fixture paths, helpers used by several test folders."""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
# The RFC example bodies (see its README.md), read by unit, integration, interop and fuzz tests and the benchmarks.
FIXTURES = REPOSITORY / "tests" / "fixtures"
