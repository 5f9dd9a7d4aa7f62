"""The test PKI and `opendots certs init` (opendots.pki): CUIDs (RFC 9132 §4.4.1), keys, names, configurations."""

import ipaddress
import stat

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from opendots.cli.main import cli
from opendots.config import ClientConfig, ServerConfig
from opendots.pki.cuid import cuid_from_certificate, cuid_from_spki


def test_cuid_known_vector():
    # SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 ...; first 16 bytes base64url without padding.
    assert cuid_from_spki(b"") == "47DEQpj8HBSa-_TImW-5JA"


def test_cuid_accepts_pem_der_and_object(pki_dir):
    pem = (pki_dir / "client.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(Encoding.DER)
    assert cuid_from_certificate(pem) == cuid_from_certificate(der) == cuid_from_certificate(cert)


def test_keys_are_private_and_certs_are_p256(pki_dir):
    for stem in ("ca", "server", "client", "other"):
        mode = stat.S_IMODE((pki_dir / f"{stem}.key").stat().st_mode)
        assert mode == 0o600, stem
        cert = x509.load_pem_x509_certificate((pki_dir / f"{stem}.crt").read_bytes())
        assert cert.public_key().curve.name == "secp256r1"


def test_server_certificate_names_and_chain(pki_dir):
    cert = x509.load_pem_x509_certificate((pki_dir / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    # The chain, checked here by `cryptography`; tests/interop/test_pki_openssl.py has openssl verify it.
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)


def test_certs_init_cli_writes_working_configs(tmp_path):
    target = tmp_path / "pki"
    result = CliRunner().invoke(
        cli, ["certs", "init", str(target), "--server-name", "dots.example.net", "--client", "branch1"]
    )
    assert result.exit_code == 0, result.output
    for name in ("ca", "server", "client", "branch1"):
        assert (target / f"{name}.crt").exists() and (target / f"{name}.key").exists()
    cert = x509.load_pem_x509_certificate((target / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "dots.example.net" in san.get_values_for_type(x509.DNSName)

    server = ServerConfig.load(target / "server.toml")
    client = ClientConfig.load(target / "client.toml")
    assert server.tls.cert == target / "server.crt"
    assert client.tls.key == target / "client.key"
    by_name = {c.name: c for c in server.clients}
    assert by_name["branch1"].cuid == cuid_from_certificate((target / "branch1.crt").read_bytes())
    assert by_name["client"].covers_prefix(ipaddress.ip_network("192.0.2.128/25"))
    assert not by_name["client"].covers_prefix(ipaddress.ip_network("10.0.0.0/8"))
    assert by_name["client"].covers_fqdn("www.example.com")
    assert not by_name["client"].covers_fqdn("example.org")


def test_server_config_component_tables_round_trip(tmp_path, pki_dir):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.signal = {"max_lifetime": 7200}
    config.data = {"max_entries": 60}  # a real key: unknown ones are refused on load
    config.mitigators = [{"type": "nftables", "interface": "eth0", "prefixes": ["192.0.2.0/24"]}]
    config.save(tmp_path / "server.toml")
    again = ServerConfig.load(tmp_path / "server.toml")
    assert again.signal == {"max_lifetime": 7200}
    assert again.data == {"max_entries": 60}
    assert again.mitigators == config.mitigators
    assert [c.cuid for c in again.clients] == [c.cuid for c in config.clients]
