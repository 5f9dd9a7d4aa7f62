"""openssl (an independent X.509 implementation) agrees with opendots.pki: the CUID of RFC 9132 §4.4.1 computed by
openssl and coreutils alone, and the test PKI's server certificate verified against its CA."""

import subprocess
from pathlib import Path

import pytest

from opendots.pki.cuid import cuid_from_certificate
from tests.conftest import require_binary

pytestmark = pytest.mark.interop


def openssl_cuid(cert_path: Path) -> str:
    """The RFC 9132 §4.4.1 CUID computed by openssl and coreutils alone, as an independent vector."""
    script = (
        f"openssl x509 -in {cert_path} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
        " | head -c 32 | xxd -r -p | base64 | tr '+/' '-_' | tr -d '='"
    )
    return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout.strip()


def test_cuid_matches_openssl_vector(pki_dir: Path) -> None:
    require_binary("openssl")
    require_binary("xxd")
    for name in ("client", "other"):
        cert = pki_dir / f"{name}.crt"
        expected = openssl_cuid(cert)
        assert len(expected) == 22
        assert cuid_from_certificate(cert.read_bytes()) == expected


def test_openssl_verifies_the_server_certificate_against_the_test_ca(pki_dir: Path) -> None:
    result = subprocess.run(
        [require_binary("openssl"), "verify", "-CAfile", str(pki_dir / "ca.crt"), str(pki_dir / "server.crt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
