"""Set-up shared by the RFC 8973 discovery e2e tests (tests/e2e/test_discovery*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opendots.config import ClientConfig
from opendots.lab.processes import ProcessStack


def discovering(stack: ProcessStack, **keys: Any) -> None:
    """client.toml with discovery = "auto" and no server_name / server_addresses (nothing explicit, §4)."""
    config = ClientConfig.load(stack.client_config_path)
    config.discovery = "auto"
    config.server_configured = False
    config.signal_port = 9  # a wrong default port: discovered candidates must carry the SRV record's port
    for key, value in keys.items():
        setattr(config, key, value)
    stack._write_client_config(stack.client_config_path, config)
    stack.client_config = config
    oneshot = ClientConfig.load(stack.client_config_path)  # the same, with no agent behind its socket
    oneshot.control_socket = stack.directory / "no-agent.sock"
    stack._write_client_config(stack.oneshot_config_path, oneshot)


def signal_records(
    domain: str,
    port: int,
    target: str = "127.0.0.1",
    service: str = "DOTS",
    srv: str = "_dots-signal",
    host: str | None = None,
) -> list[str]:
    """dnsmasq options in the shape of RFC 8973 Figure 8 (SERVICE "DOTS") or Figure 9 ("DOTS-CALL-HOME", SRV
    "_dots-call-home"): a non-terminal NAPTR per protocol, then "s" NAPTRs, SRV to HOST.DOMAIN, then its A record."""
    host = host or ("provider" if service == "DOTS-CALL-HOME" else "server")
    return [
        f"--naptr-record={domain},100,10,,{service}:signal.udp,,signal.{domain}",
        f"--naptr-record={domain},200,10,,{service}:signal.tcp,,signal.{domain}",
        f"--naptr-record=signal.{domain},100,10,s,{service}:signal.udp,,{srv}._udp.{domain}",
        f"--naptr-record=signal.{domain},200,10,s,{service}:signal.tcp,,{srv}._tcp.{domain}",
        f"--srv-host={srv}._udp.{domain},{host}.{domain},{port},0,0",
        f"--srv-host={srv}._tcp.{domain},{host}.{domain},{port},0,0",
        f"--host-record={host}.{domain},{target}",
    ]


def call_home_records(domain: str, port: int, target: str = "127.0.0.1", host: str | None = None) -> list[str]:
    """RFC 8973 Figure 9: "DOTS-CALL-HOME" NAPTRs, SRV `_dots-call-home._udp/_tcp`, an A record."""
    return signal_records(domain, port, target, "DOTS-CALL-HOME", "_dots-call-home", host)


def data_records(domain: str, port: int, target: str = "127.0.0.1") -> list[str]:
    """dnsmasq options for the data channel part of RFC 8973 Figure 8: "DOTS:data.tcp", SRV `_dots-data._tcp`."""
    return [
        f"--naptr-record={domain},300,10,,DOTS:data.tcp,,data.{domain}",
        f"--naptr-record=data.{domain},100,10,s,DOTS:data.tcp,,_dots-data._tcp.{domain}",
        f"--srv-host=_dots-data._tcp.{domain},server.{domain},{port},0,0",
        f"--host-record=server.{domain},{target}",
    ]


def name_the_provider(directory: Path, cpe_toml: Path, names: list[str]) -> None:
    """Re-issue provider.crt of `certs init --call-home` in DIRECTORY with NAMES too (the discovery domains its
    certificate must carry, RFC 8973 §8), and let cpe.toml know the provider by the new certificate's CUID."""
    from dataclasses import replace

    from opendots.config import ServerConfig
    from opendots.pki import cuid_from_certificate
    from opendots.pki.certs import TestPki

    credential = TestPki(directory).issue("provider", "provider", ["provider", *names])
    config = ServerConfig.load(cpe_toml)
    cuid = cuid_from_certificate(credential.cert_path.read_bytes())
    config.clients = [replace(config.clients[0], cuid=cuid), *config.clients[1:]]
    config.save(cpe_toml)
