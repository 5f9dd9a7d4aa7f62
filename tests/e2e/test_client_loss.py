"""The client under loss (nftables `numgen random` on the loopback of a namespace; the kernel has no netem), over
DTLS and TLS at 30 % and 50 %: whatever a one-shot `opendots client mitigate` or the agent reports must be what the
server did. Exit 0 and "mid N: 2.01" only when the server holds mid N; otherwise one error line, never a
traceback (RFC 9132 §4.4.1: a failed request may still have reached the server, so the error says so).

Few tries per case keep the set within a few minutes; a crash like the InvalidStateError of the one-shot teardown
showed up in about one run in six at 30 % loss before it was fixed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.signal.client.shell.control import ControlClient, ControlError
from tests.e2e.loss_lab import AgentProcess, LossyServer, lossy_environment

pytestmark = pytest.mark.timeout(240)
TRIES = {30: 2, 50: 1}


@pytest.fixture(scope="module")
def lossy(lab_reason: str | None, pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LossyServer]:
    if lab_reason is not None:
        pytest.skip(lab_reason)
    with lossy_environment(), LossyServer(tmp_path_factory.mktemp("loss"), pki_dir) as server:
        yield server


def _prefix() -> str:
    return f"203.0.113.{secrets.randbelow(250) + 1}/32"


@pytest.mark.parametrize("loss", [30, 50])
@pytest.mark.parametrize("transport", ["dtls", "tls"])
def test_one_shot_mitigate_reports_exactly_what_the_server_did_under_loss(
    lossy: LossyServer, transport: str, loss: int
) -> None:
    config = lossy.client_config(transport, f"oneshot-{transport}-{loss}")
    lossy.set_loss(loss)
    try:
        for _ in range(TRIES[loss]):
            before = set(lossy.held())
            prefix = _prefix()
            run = lossy.cli(config, "mitigate", "--target-prefix", prefix, "--lifetime", "600")
            lossy.set_loss(0)  # ask the server what it holds over a clean path
            held = lossy.held()
            lossy.set_loss(loss)
            assert "Traceback" not in run.stderr, run.stderr
            new = {mid: entry for mid, entry in held.items() if mid not in before}
            if run.returncode == 0:
                # Over DTLS requests are NON, retried by the DOTS layer (RFC 9132 §4.4.1): when the first copy
                # arrived but its 2.01 was lost, the retry (a new CoAP message) finds the mid and gets 2.04.
                printed = re.fullmatch(r"mid (\d+): 2\.0[14] (?:Created |Changed )?\(lifetime (\d+) s\)\n", run.stdout)
                assert printed, run.stdout
                mid = int(printed.group(1))
                assert mid in held and prefix in held[mid]["target-prefix"]
            else:
                # 69: no answer (EX_UNAVAILABLE), 65: refused by the server (opendots.errors)
                assert (
                    run.returncode in (65, 69) and run.stderr.startswith("Error: ") and run.stderr.count("\n") == 1
                ), run.stderr
                if "no DOTS server candidate answered" in run.stderr:
                    assert run.returncode == 69
                    assert new == {}, "the server acted on a request the client says never left"
    finally:
        lossy.set_loss(0)


@pytest.mark.parametrize("loss", [30, 50])
@pytest.mark.parametrize("transport", ["dtls", "tls"])
def test_agent_reports_exactly_what_the_server_did_under_loss(lossy: LossyServer, transport: str, loss: int) -> None:
    config = lossy.client_config(transport, f"agent-{transport}-{loss}")
    agent = AgentProcess(lossy, config)
    try:
        agent.wait_connected(30)
        lossy.set_loss(loss)
        for _ in range(TRIES[loss]):
            before = set(lossy.held())
            prefix = _prefix()
            try:
                with ControlClient(agent.socket, timeout=90) as control:
                    answer = control.mitigate({"target-prefix": [prefix], "lifetime": 600})
            except ControlError as error:
                answer = {"error": str(error), "code": error.code}
            lossy.set_loss(0)
            held = lossy.held()
            lossy.set_loss(loss)
            # 2.04: the agent's NON request was retried (RFC 9132 §4.4.1) and its first copy had arrived, so the
            # retry found the mid and updated it: the server holds it either way.
            if answer.get("code") in ("2.01", "2.04"):
                assert answer["mid"] in held and prefix in held[answer["mid"]]["target-prefix"]
            else:
                assert answer["code"] in ("5.03", "5.04"), answer
                new = [mid for mid in held if mid not in before]
                if answer["code"] == "5.03" and "no signal channel session" in answer["error"]:
                    assert new == [], "the server acted on a request the agent says it never sent"
        lossy.set_loss(0)
        with ControlClient(agent.socket, timeout=30) as control:
            assert control.ping()  # the agent survived the loss
    finally:
        lossy.set_loss(0)
        stderr = agent.stop()
    # aiocoap's shutdown races (opendots.transport.aiocoap_hooks.quiet_shutdown_races) are logged at debug level:
    # any traceback left is a real one.
    assert "Traceback" not in stderr, stderr
