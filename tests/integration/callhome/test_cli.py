"""`opendots callhome cpe` as a process: it dials the provider given with --provider and serves its requests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPOSITORY
from tests.helpers.callhome import SCOPE, SOURCE, cpe_config, start_provider
from tests.helpers.cli import invoke


async def test_the_cpe_command_dials_the_provider_and_answers_its_mitigation_request(
    pki_dir: Path, tmp_path: Path
) -> None:
    provider, address = await start_provider(pki_dir, "dtls")
    cpe_config(pki_dir, tmp_path).save(tmp_path / "cpe.toml")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opendots", "callhome", "cpe", "-c", str(tmp_path / "cpe.toml"),
        "--provider", f"client@127.0.0.1:{address.port}", "--transport", "dtls",
        cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert f"DOTS Call Home server dialing coaps://127.0.0.1:{address.port}" in line, line
        await provider.wait_for("home", timeout=20)
        answer = await provider.mitigate(
            "home", 5, source_prefixes=["192.0.2.5/32"], target_prefixes=["203.0.113.1/32"]
        )
        assert answer.code == "2.01", answer
        status = await provider.status("home", 5)
        assert status.body[SCOPE]["scope"][0][SOURCE] == ["192.0.2.5/32"]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        await provider.stop()
    assert process.returncode == 0


def test_a_provider_without_a_name_is_refused_with_one_line(pki_dir: Path) -> None:
    result = invoke("callhome", "cpe", "-c", str(pki_dir / "server.toml"), "--provider", "127.0.0.1:4647")
    assert result.exit_code == 2 and "NAME@HOST[:PORT]" in result.output, result.output
