"""Server CPU per message for the messages every session repeats: heartbeat PUT /hb, refresh PUT (the same
mitigation request again, same body) and GET of one mitigation, over DTLS, OpenDOTS beside libcoap in the same run.

One DTLS client (the sans-I/O DTLS core, no aiocoap on the client side, so the generator stays cheap) sends N
messages of one kind, one at a time, Non-confirmable (RFC 9132 §4.4.1, §4.7), to each server (a fresh process per
kind); the server's CPU over the N is divided by N. The servers of a kind run side by side and take their N in
ROUNDS slices in turn (A B C D, D C B A, ...; `--rounds`, 6 by default), so that a change in the machine's state
over the run (a neighbour, the CPU's frequency) weighs on each alike rather than on whichever ran then. That CPU is
the kernel's per-process CPU clock of the server (nanoseconds of run time over all its threads, exited ones
included: _common.run_seconds), not /proc's 10 ms ticks, so a ratio near 2.0 no longer flips with a tick; libcoap's
server is read the same way. libcoap's coap-server-openssl runs with dynamic resources (`-d`): the first PUT creates
the resource (2.01), the next ones update it (2.04), a GET reads it (2.05): the same message shapes, the same bytes.
The floor (bench/signal_channel.py's) is aiocoap with our DTLS transport answering 4.04 at once: the transport, CoAP
and event-loop share of OpenDOTS's figure before the lean path; the lean floor is the same transport answering 4.04
on the lean path (opendots.transport.coap_lean): that share under OpenDOTS's heartbeats, refreshes and GETs now.
"OpenDOTS, lean off" is the same server with `lean_coap = false` (every request through aiocoap, as before the lean
path; `--no-lean-off` skips it). The generator's CPU per message (its own process_time(), also nanoseconds) is
printed beside each row. `--profile DIR` writes a cProfile (CPU time) of OpenDOTS's server per kind (DIR/KIND.prof);
it inflates that server's figures about threefold.

Usage: PYTHONPATH=. python bench/message_cpu.py [--messages 3000] [--rounds 6] [--profile /tmp/prof]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from bench._common import SansIoDtlsClient, files, free_port, print_table, run_seconds
from bench.signal_channel import SCOPE, pin, start_libcoap, start_role, stop
from opendots.cli.certs import init_pki
from opendots.model import encode_signal
from opendots.pki import cuid_from_certificate
from opendots.signal.server.core.messages import HEARTBEAT
from opendots.transport.dtls import DtlsConnection, client_context

DOTS = (".well-known", "dots")
KINDS = ("heartbeat", "refresh PUT", "GET")
LEAN_OFF = "OpenDOTS, lean off"
LEAN_FLOOR = "lean floor"


class Client(SansIoDtlsClient):
    """Sends one message, waits for its answer, and so on: the server only ever has one message to handle."""

    def __init__(self, connection: DtlsConnection) -> None:
        super().__init__(connection)
        self.mid = 0
        self.answer: asyncio.Future[aiocoap.Message] | None = None

    def application_data(self, data: bytes) -> None:
        message = aiocoap.Message.decode(data)
        if message.code.is_response() and self.answer is not None and not self.answer.done():
            self.answer.set_result(message)

    async def send(self, code: Code, path: tuple[str, ...], payload: bytes = b"") -> Code:
        self.mid = (self.mid + 1) & 0xFFFF
        message = aiocoap.Message(code=code, uri_path=path)
        message.mtype, message.mid = Type.NON, self.mid
        if payload:
            message.opt.content_format = 271
            message.payload = payload
        message.token = self.mid.to_bytes(2, "big")
        self.answer = asyncio.get_running_loop().create_future()
        self.connection.send(message.encode())
        self.flush()
        return (await asyncio.wait_for(self.answer, 5)).code


def request(kind: str, cuid: str) -> tuple[Code, tuple[str, ...], bytes]:
    if kind == "heartbeat":
        return Code.PUT, (*DOTS, "hb"), encode_signal({HEARTBEAT: {"peer-hb-status": True}})
    path = (*DOTS, "mitigate", f"cuid={cuid}", "mid=1")
    if kind == "GET":
        return Code.GET, path, b""
    entry = {"target-prefix": ["2001:db8:6401::/48"], "target-protocol": [6], "lifetime": 3600}
    return Code.PUT, path, encode_signal({SCOPE: {"scope": [entry]}})


class Subject:
    """One server under measurement: its client session, the message it is sent, and what it cost so far."""

    def __init__(self, process: subprocess.Popen, client: Client, message: tuple[Code, tuple[str, ...], bytes]):
        self.process, self.client, self.message = process, client, message
        self.server = self.generator = 0.0
        self.count = 0
        self.codes: set[str] = set()

    async def run(self, count: int) -> None:
        """COUNT more messages; their server and generator CPU added to the totals."""
        client, pid = self.client, self.process.pid
        server_before, client_before = run_seconds(pid), time.process_time()
        for _ in range(count):
            self.codes.add(str(await client.send(*self.message)))
        self.server += run_seconds(pid) - server_before
        self.generator += time.process_time() - client_before
        self.count += count


async def open_subject(pki: Path, process: subprocess.Popen, port: int, kind: str) -> Subject:
    """A DTLS session to the server on PORT, warmed up with 20 messages of KIND (first-use costs out)."""
    loop = asyncio.get_running_loop()
    connection = DtlsConnection.connect(client_context(files(pki, "client"), "localhost"), now=time.monotonic())
    _, client = await loop.create_datagram_endpoint(lambda: Client(connection), remote_addr=("127.0.0.1", port))
    await asyncio.wait_for(client.established, 30)
    cuid = cuid_from_certificate((pki / "client.crt").read_bytes())
    message = request(kind, cuid)
    if kind == "GET":  # the mitigation to read
        await client.send(*request("refresh PUT", cuid))
    subject = Subject(process, client, message)
    subject.codes = {str(await client.send(*message)) for _ in range(20)}
    return subject


def lean_off_copy(pki: Path) -> Path:
    """A copy of PKI whose server.toml turns the lean path off (the same certificates: the client is the same)."""
    copy = Path(tempfile.mkdtemp(prefix="opendots-bench-msgcpu-lean-off-"))
    shutil.copytree(pki, copy, dirs_exist_ok=True)
    config = copy / "server.toml"
    config.write_text(config.read_text().replace("[server]\n", "[server]\nlean_coap = false\n", 1))
    return copy


async def main(args: argparse.Namespace) -> None:
    pki = Path(tempfile.mkdtemp(prefix="opendots-bench-msgcpu-"))
    init_pki(pki, client_names=[])
    pkis = {"OpenDOTS": pki, "floor": pki, LEAN_FLOOR: pki}
    names = ["OpenDOTS", "floor", LEAN_FLOOR, "libcoap"]
    if args.lean_off:
        pkis[LEAN_OFF] = lean_off_copy(pki)
        names.insert(1, LEAN_OFF)
    rows: list[tuple[str, str, str]] = []
    for kind in KINDS:
        subjects: dict[str, Subject] = {}
        try:
            for name in names:
                if name in pkis:
                    port = free_port()
                    profile = (
                        args.profile / f"{kind.replace(' ', '_')}.prof" if args.profile and name == "OpenDOTS" else None
                    )
                    role = {"floor": "floor", LEAN_FLOOR: "lean-floor"}.get(name, "dots")
                    process = start_role(role, pkis[name], port, profile)
                else:
                    started = start_libcoap(pki)
                    if started is None:
                        continue
                    process, port = started
                try:
                    subjects[name] = await open_subject(pki, process, port, kind)
                except BaseException:
                    stop(process)
                    raise
            # The servers in turn, slice by slice (A B C D, D C B A, ...), each slice's CPU added to its server's
            # total: a neighbour's burst or a change of CPU frequency then weighs on every server alike, instead of
            # on whichever was being measured at the time.
            order = list(subjects.values())
            for index in range(args.rounds):
                for subject in order if index % 2 == 0 else reversed(order):
                    await subject.run(args.messages // args.rounds)
        finally:
            for subject in subjects.values():
                subject.client.transport.close()
                stop(subject.process)
        reference = subjects.get("libcoap")
        for name, subject in subjects.items():
            server = subject.server / subject.count
            note = f"generator {subject.generator / subject.count * 1e6:.0f} µs/message"
            note += f"; answers {', '.join(sorted(subject.codes))}"
            if reference is not None and subject is not reference:
                note = f"ratio to libcoap {server / max(reference.server / reference.count, 1e-9):.2f}; {note}"
            rows.append((f"{kind}, {name} server CPU", f"{server * 1e6:.1f} µs/message", note))
    rows.append(("profile", "on" if args.profile else "off", "cProfile (CPU time) inflates OpenDOTS's figures when on"))
    rows.append(("CPU placement", args.placement, "the same for every server"))
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="messages per kind and server")
    parser.add_argument("--rounds", type=int, default=6, help="slices each server's messages are taken in, in turn")
    parser.add_argument("--profile", type=Path, help="directory for OpenDOTS's cProfile per kind")
    parser.add_argument(
        "--no-lean-off", dest="lean_off", action="store_false", help="skip OpenDOTS with lean_coap = false"
    )
    arguments = parser.parse_args()
    arguments.placement = pin(load_cpu_count=1)  # servers on one CPU, this process on another
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments))
