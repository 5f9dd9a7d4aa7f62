"""Shared test support (not collected as tests): harnesses, fixture paths, helpers used by several test folders."""

from pathlib import Path

from opendots.config import TlsFiles

REPOSITORY = Path(__file__).resolve().parents[2]
# The RFC example bodies (see its README.md), read by unit, integration, interop and fuzz tests and the benchmarks.
FIXTURES = REPOSITORY / "tests" / "fixtures"


def tls_files(directory: Path, stem: str) -> TlsFiles:
    """The CA, certificate and key of STEM in a test PKI directory (`opendots certs init` names)."""
    return TlsFiles(directory / "ca.crt", directory / f"{stem}.crt", directory / f"{stem}.key")
