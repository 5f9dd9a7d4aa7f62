"""Running libcoap's coap-client (an independent CoAP/DTLS/TLS implementation) with a test PKI certificate."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from opendots.model import encode_signal, encode_telemetry
from tests.conftest import require_binary


class CoapClient:
    """Runs coap-client-openssl with one of the test PKI's client certificates."""

    def __init__(self, pki_dir: Path, work: Path, stem: str = "client", binary: str | None = None) -> None:
        self.binary = binary or require_binary("coap-client-openssl")
        self.credentials = ["-c", str(pki_dir / f"{stem}.crt"), "-j", str(pki_dir / f"{stem}.key")]
        self.credentials += ["-C", str(pki_dir / "ca.crt")]
        self.work = work
        self.runs = 0

    async def start(self, *args: str, payload: dict[str, Any] | None = None) -> tuple[asyncio.subprocess.Process, Path]:
        self.runs += 1
        output = self.work / f"response-{self.runs}.bin"
        extra: list[str] = []
        if payload is not None:
            body = self.work / f"request-{self.runs}.cbor"
            telemetry = next(iter(payload), "").startswith("ietf-dots-telemetry:")  # RFC 9244: its own key table
            body.write_bytes((encode_telemetry if telemetry else encode_signal)(payload))
            extra = ["-t", "271", "-f", str(body)]
        process = await asyncio.create_subprocess_exec(
            self.binary, *self.credentials, "-o", str(output), *extra, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return process, output

    async def run(self, *args: str, payload: dict[str, Any] | None = None) -> tuple[bytes, str]:
        """(response payload, what coap-client printed: the code of an error response, e.g. '4.04 Not Found')."""
        process, output = await self.start("-B", "10", *args, payload=payload)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode(errors="replace")
        printed = (stdout + stderr).decode(errors="replace").strip()
        return (output.read_bytes() if output.exists() else b""), printed


QBLOCK_ENV = "OPENDOTS_LIBCOAP_QBLOCK"


def qblock_libcoap_bin() -> Path:
    """The bin directory of a libcoap >= 4.3.5 built with Q-Block (RFC 9177), from $OPENDOTS_LIBCOAP_QBLOCK; the test
    is skipped when it is not set or holds no coap-client (Debian 12's libcoap 4.3.1 has no Q-Block)."""
    configured = os.environ.get(QBLOCK_ENV)
    if not configured:
        pytest.skip(f"{QBLOCK_ENV} is not set: point it at the bin directory of a libcoap >= 4.3.5 built with Q-Block")
    directory = Path(configured)
    if not (directory / "coap-client").is_file():
        pytest.skip(f"{QBLOCK_ENV}={configured} holds no coap-client (libcoap >= 4.3.5 built with Q-Block)")
    return directory


class QBlockCoapClient(CoapClient):
    """libcoap 4.3.5's coap-client (`-L 5`: libcoap's block handling, trying Q-Block first) with a test PKI cert."""

    def __init__(self, pki_dir: Path, work: Path, stem: str = "client") -> None:
        super().__init__(pki_dir, work, stem, binary=str(qblock_libcoap_bin() / "coap-client"))

    async def run_traced(self, *args: str, payload: dict[str, Any] | None = None) -> tuple[bytes, str]:
        """As run(), with `-v 7` (every PDU printed with its options) and a 40 s limit for lossy runs."""
        process, output = await self.start("-B", "40", "-v", "7", *args, payload=payload)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
        printed = (stdout + stderr).decode(errors="replace")
        (self.work / f"trace-{self.runs}.log").write_text(printed)  # the whole trace, for a failure's post-mortem
        assert process.returncode == 0, printed[-3000:]
        return (output.read_bytes() if output.exists() else b""), printed
