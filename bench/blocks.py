"""Block1/Block2 against Q-Block (RFC 9177) under datagram loss: how long a large body takes to arrive.

Needs root: a network namespace whose loopback drops LOSS % of the DTLS application-data datagrams (nftables
`numgen random` at the input hook, which every packet on loopback passes once, so both directions lose LOSS %;
the kernel has no netem). DTLS handshake records are not dropped: a DOTS session is up before the attack, and
`bench/dtls_loss.py` measures handshakes under loss. Our server (the real signal-channel stack in this process:
SQLite store, DOTS resources, DTLS, the Q-Block engine) is one side; libcoap 4.3.5's coap-client
($OPENDOTS_LIBCOAP_QBLOCK, else /work/libcoap-4.3.5/install/bin) the other, one process per transfer:
- `put 64 KiB`: a mitigation request of ~64 KiB (our Block1/Q-Block1 body limit) PUT in 1024-byte blocks:
  Block1 (CON, lock step) against Q-Block1 (`-L 5 -N`: NON bursts, 2.31, 4.08 listing the missing blocks);
- `get 1 MiB`: a bench-only resource on the same server stack answering GET with 1 MiB (a request body may not pass
  64 KiB, so the 1 MiB body goes as a response): Block2 against Q-Block2 (`-L 5`, CON request, NON bursts);
- `get 10,000 mitigations`: GET of all of a client's 10,000 mitigations (seeded through the server's core before
  the run), Block2 against Q-Block2.
Beside them, our own client (`--clients ours`, bench/_blocks_ours.py: the request path of the client agent, in a
process of its own, a DTLS session per transfer) moves the same bodies: Q-Block with the RFC 9362 values its
identities ask for with PUT /config (LOSSY_PATH, for a lossy path), against Block1/Block2 forced on the same client
(Q-Block off, the request CON: lock step at the session's ack-timeout). Its time is request to answer on an open
session (handshake and probe done first); its CPU is that process's during the timed part, per transfer.
A coap-client transfer's time is the process's wall time (start to exit: the DTLS handshake, ~10 ms without loss,
and for Q-Block libcoap's probe of /.well-known/core are in it); one that has not finished within --cap seconds
is stopped and counted as not delivered. Lossy cells run --parallel transfers at a time (timers dominate), the
lossless cells one at a time. The load generator's CPU (the coap-client processes) and this process's (the server)
are printed per cell.

    .venv/bin/python bench/blocks.py [--transfers 20] [--quick] [--loss 0,10,30,50] [--cap 60]
        [--clients libcoap,ours] [--modes block,qblock] [--cases 'put 64 KiB|get 1 MiB|get 10,000 mitigations']
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIB = 1024
BLOCK = 1024
MITIGATIONS = 10_000
CASES = ("put 64 KiB", "get 1 MiB", "get 10,000 mitigations")
MODES = ("block", "qblock")
CLIENTS = ("libcoap", "ours")
# The RFC 9362 robust-transmission values our client asks for (PUT /config, both sets) for a lossy path; README
# "Block transfers under loss" gives the reasoning. ack-random-factor is RFC 9132's (it also paces CON Block1/Block2).
LOSSY_PATH = {
    "max_payloads": 32,
    "non_max_retransmit": 8,
    "non_timeout": "0.30",
    "non_receive_timeout": "1.33",  # RFC 9177 §7.2's floor: NON_TIMEOUT x ACK_RANDOM_FACTOR + 1 s
    "non_probing_wait": "10.00",
    "non_partial_timeout": "60.00",
    "ack_random_factor": "1.10",
}
DEFAULT_LIBCOAP = "/work/libcoap-4.3.5/install/bin"


def _ruleset(percent: int) -> str:
    # @th,64,8: the first byte of the UDP payload, the DTLS record's content type (23: application data). The input
    # hook, not output: a datagram dropped at output fails the sender's sendto() with EPERM (libcoap logs
    # it as critical and its runs failed far more often); lost on a path, a datagram vanishes silently.
    return (
        "table inet odblocks {\n  chain in {\n    type filter hook input priority 0; policy accept;\n"
        f"    meta l4proto udp @th,64,8 23 numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
    )


def _set_loss(percent: int) -> None:
    subprocess.run(["nft", "delete", "table", "inet", "odblocks"], capture_output=True, check=False)
    if percent:
        subprocess.run(["nft", "-f", "-"], input=_ruleset(percent), text=True, check=True)


def _mitigation(prefixes: list[str], lifetime: int = 86400) -> dict:
    scope = {"target-prefix": prefixes, "target-protocol": [17], "lifetime": lifetime}
    return {"ietf-dots-signal-channel:mitigation-scope": {"scope": [scope]}}


_FITS: dict[int, int] = {}


def _large_put_body(limit: int, salt: int) -> bytes:
    """A mitigation request as close to LIMIT bytes as /64 prefixes get it (SALT, below 0x1000, makes each transfer's
    prefixes its own, apart from the seeded mitigations': a body as long whatever SALT is)."""
    from opendots.model import encode_signal

    def body(count: int) -> bytes:
        prefixes = [f"2001:db8:{0x8000 + salt:x}:{i:x}::/64" for i in range(count)]
        return encode_signal(_mitigation(prefixes))

    if limit not in _FITS:
        low, high = 1, limit // 8
        while low < high:  # the largest count that fits
            middle = (low + high + 1) // 2
            low, high = (middle, high) if len(body(middle)) <= limit else (low, middle - 1)
        _FITS[limit] = low
    return body(_FITS[limit])


class _Body:
    """The bench-only resource: GET answers SIZE bytes (a response may be larger than a request body)."""

    def __init__(self, size: int) -> None:
        import aiocoap.resource

        from opendots.transport.qblock import QBLOCK2
        from opendots.transport.qblock_server import uses_qblock

        class Resource(aiocoap.resource.Resource):
            async def needs_blockwise_assembly(self, request):
                # As every Q-Block-aware resource: the transport cuts the body. aiocoap's Site hands a child a copy
                # of the request, which loses the transport's mark: the Q-Block2 option itself says it here.
                return not (uses_qblock(request) or request.opt.get_option(QBLOCK2))

            async def render_get(self, request):
                import aiocoap

                return aiocoap.Message(payload=payload, content_format=42)

        payload = os.urandom(size)
        self.resource = Resource()
        self.payload = payload


async def _transfer(binary: str, argv: list[str], cap: float) -> tuple[float | None, bytes, str]:
    """Run coap-client; (seconds to exit, or None past CAP or on failure; what it wrote to -o; what it printed)."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        binary, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), cap)
    except TimeoutError:
        process.kill()
        await process.communicate()
        return None, b"", "past the cap"
    seconds = time.monotonic() - started
    printed = (stdout + stderr).decode(errors="replace")
    return (seconds if process.returncode == 0 else None), b"", printed


async def _inner(args: argparse.Namespace) -> None:
    import cbor2

    from opendots.config import ServerConfig
    from opendots.pki.setup import init_pki
    from opendots.signal.server.core.messages import Request
    from opendots.signal.server.shell.run import start_signal_server

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("opendots").setLevel(logging.ERROR)
    directory = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    # 'other' (libcoap) and 'ours-put' (our client) PUT, so the GET case's 10,000 ('client', 'ours') stay as they are;
    # our client's identities negotiate the lossy-path values, libcoap's keep RFC 9177's defaults.
    init_pki(directory, client_names=["other", "ours", "ours-put"])
    config = ServerConfig.load(directory / "server.toml")
    config.db = directory / "signal.db"
    config.signal = {
        **(config.signal or {}),
        "max_mitigations_per_client": 2 * MITIGATIONS + 10_000,
        "non_timeout_limits": [0.1, 30.0],  # the operator's range; the default minimum is 1 s
    }
    port = 5684
    running = await start_signal_server(config, bind=[("127.0.0.1", port)], tls=False)
    cuid = next(client.cuid for client in config.clients if client.name == "client")
    big = _Body(KIB * KIB)
    running.endpoint.context.serversite.add_resource(("bench", "body"), big.resource)
    from opendots.model import encode_signal

    def cuid_of(name: str) -> str:
        return next(client.cuid for client in config.clients if client.name == name)

    holders = [
        (name, base)
        for name, client, base in (("client", "libcoap", 0), ("ours", "ours", 0x4000))
        if client in args.clients
    ]
    for holder, group in holders:  # each its own prefixes: the server refuses overlaps between clients (4.09)
        for mid in range(1, args.mitigations + 1):  # the GET case's mitigations, through the core as a PUT would go
            body = encode_signal(_mitigation([f"2001:db8:{group + (mid >> 8):x}:{mid & 0xFF:x}::/64"]))
            request = Request(
                "PUT", ("mitigate", f"cuid={cuid_of(holder)}", f"mid={mid}"), cuid_of(holder), payload=body
            )
            assert running.service.handle(request).code == "2.01"
        print(f"seeded {args.mitigations} mitigations for {holder}", file=sys.stderr, flush=True)
    LOSSY_PATH.update(args.robust)
    negotiated = {
        name: await _negotiate(directory, port, name) for name in ("ours", "ours-put") if "ours" in args.clients
    }

    binary = str(Path(os.environ.get("OPENDOTS_LIBCOAP_QBLOCK", DEFAULT_LIBCOAP)) / "coap-client")

    def credentials(stem: str) -> list[str]:
        return [
            "-c",
            str(directory / f"{stem}.crt"),
            "-j",
            str(directory / f"{stem}.key"),
            "-C",
            str(directory / "ca.crt"),
        ]

    other = next(client.cuid for client in config.clients if client.name == "other")
    base = f"coaps://127.0.0.1:{port}"
    mitigations_uri = f"{base}/.well-known/dots/mitigate/cuid={cuid}"
    qblock = running.endpoint.qblock

    def held_prefixes(mid: int, name: str = "other") -> int:
        """How many target prefixes the server holds for NAME's MID: a PUT counts when all of them arrived, not
        on coap-client's exit status alone."""
        answer = running.service.core.render_mitigations(name, cuid_of(name), mid, (), time.time())
        if answer.code != "2.05":
            return 0
        return len(answer.body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["target-prefix"])

    results: list[dict] = []
    salt = 0
    for loss in args.loss:
        _set_loss(loss)
        for case, client, mode in [(c, k, m) for c in args.cases for k in args.clients for m in args.modes]:
            if client == "ours":
                _large_put_body(64 * KIB, 0)  # how many prefixes a PUT holds (_FITS), as the load generator builds it
                salt += args.transfers
                parallel = 1 if loss == 0 else args.parallel
                spec = {
                    "directory": str(directory),
                    "port": port,
                    "case": case,
                    "mode": mode,
                    "transfers": args.transfers,
                    "parallel": parallel,
                    "cap": args.cap,
                    "stem": "ours-put" if case.startswith("put") else "ours",
                    "cuid": cuid_of("ours-put" if case.startswith("put") else "ours"),
                    "config": negotiated["ours-put" if case.startswith("put") else "ours"],
                    "mids": list(range(salt - args.transfers + 1, salt + 1)),
                    "put_limit": 64 * KIB,
                    "sha256": hashlib.sha256(big.payload).hexdigest(),
                    "mitigations": args.mitigations,
                    "trace": args.trace,
                }
                row = await _ours_cell(spec, qblock, lambda mid: held_prefixes(mid, "ours-put"))
                row.update(loss=loss, case=case, mode=mode, client="ours", parallel=parallel)
                results.append(row)
                print(_line(row, args.cap), file=sys.stderr, flush=True)
                for transfer in row["transfers"] if args.trace is not None else ():
                    if transfer.get("trace") and (transfer["seconds"] or float("inf")) > args.trace:
                        print(f"  mid {transfer['mid']}: {transfer['seconds']} {transfer['why']}", file=sys.stderr)
                        for at, event, detail in transfer["trace"]:
                            print(f"    {at:7.3f} {event:6} {detail}", file=sys.stderr)
                continue
            if True:
                parallel = 1 if loss == 0 else args.parallel
                counts_before = dict(qblock.counts)
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                own = resource.getrusage(resource.RUSAGE_SELF)
                wall = time.monotonic()
                times: list[float | None] = []
                failures: dict[str, int] = {}
                for first in range(0, args.transfers, parallel):
                    batch = []
                    for _index in range(first, min(first + parallel, args.transfers)):
                        salt += 1
                        output = directory / f"out-{salt}.bin"
                        stem = "other" if case.startswith("put") else "client"
                        argv = [*credentials(stem), "-b", str(BLOCK), "-B", str(int(args.cap) + 5), "-o", str(output)]
                        argv += ["-v", "7"] if args.libcoap_log else []
                        argv += ["-L", "5"] if mode == "qblock" else []
                        if case.startswith("put"):
                            payload = directory / f"put-{salt}.cbor"
                            payload.write_bytes(_large_put_body(64 * KIB, salt))
                            argv += ["-N"] if mode == "qblock" else []
                            argv += [
                                "-m",
                                "put",
                                "-t",
                                "271",
                                "-f",
                                str(payload),
                                f"{base}/.well-known/dots/mitigate/cuid={other}/mid={salt}",
                            ]
                        else:
                            # A token of its own: with the empty default, coap-client resets our later blocks once it
                            # has asked for missing ones (seen with NON GETs).
                            argv += ["-N", "-T", f"{salt:x}"] if mode == "qblock" and args.get_type == "non" else []
                            argv += [f"{base}/bench/body" if case == "get 1 MiB" else mitigations_uri]
                        batch.append((output, salt, asyncio.ensure_future(_transfer(binary, argv, args.cap))))
                    for output, mid, future in batch:
                        seconds, _, printed = await future
                        if args.libcoap_log:  # coap-client's -v 7 log of this transfer, to read where it went
                            args.libcoap_log.mkdir(parents=True, exist_ok=True)
                            (args.libcoap_log / f"{loss}-{case.split()[0]}-{mode}-{mid}.log").write_text(printed)
                        data = output.read_bytes() if output.exists() else b""
                        ok = seconds is not None and (
                            held_prefixes(mid) == _FITS[64 * KIB]
                            if case.startswith("put")
                            else _delivered(case, data, big.payload, args.mitigations, cbor2)
                        )
                        times.append(seconds if ok else None)
                        if not ok:
                            why = "past the cap" if seconds is None and printed == "past the cap" else _why(printed)
                            failures[why] = failures.get(why, 0) + 1
                children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                own_after = resource.getrusage(resource.RUSAGE_SELF)
                generator = (children_after.ru_utime + children_after.ru_stime) - (
                    children.ru_utime + children.ru_stime
                )
                server = (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime)
                counts = {k: qblock.counts[k] - counts_before.get(k, 0) for k in qblock.counts}
                row = {
                    "loss": loss,
                    "case": case,
                    "mode": mode,
                    "client": "libcoap",
                    "times": times,
                    "failures": failures,
                    "parallel": parallel,
                    "generator_cpu": generator,
                    "server_cpu": server,
                    "wall": time.monotonic() - wall,
                    "qblock_counts": counts,
                }
                results.append(row)
                print(_line(row, args.cap), file=sys.stderr, flush=True)
    _set_loss(0)
    await running.stop()
    print(json.dumps(results))


async def _negotiate(directory: Path, port: int, name: str) -> dict:
    """NAME's session configuration with LOSSY_PATH in both sets, asked for as a DOTS client does (PUT /config,
    CON) and read back (GET /config): the body our client's transfers take their RFC 9362 values from."""
    from bench._common import files
    from opendots.signal.client.core.requests import config_get_request, config_put_request
    from opendots.signal.client.core.timing import SessionParameters, config_put_body
    from opendots.signal.client.shell.coap import send
    from opendots.transport import create_client_context

    context = await create_client_context(files(directory, name), server_name="localhost")
    base = f"coaps://127.0.0.1:{port}"
    try:
        body = config_put_body(idle=LOSSY_PATH, mitigating=LOSSY_PATH)
        answer = await send(context, base, config_put_request(1, body), reliable=False, parameters=SessionParameters())
        if answer.code not in ("2.01", "2.04"):
            raise RuntimeError(f"PUT /config for {name}: {answer.code} {answer.diagnostic}")
        answer = await send(context, base, config_get_request(), reliable=False, parameters=SessionParameters())
        assert answer.body is not None
        return answer.body
    finally:
        await context.shutdown()


async def _ours_cell(spec: dict, qblock, put_held) -> dict:
    """One cell of our client: bench/_blocks_ours.py in a process of its own (its CPU is the load generator's)."""
    counts_before = dict(qblock.counts)
    own = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic()
    script = str(Path(__file__).resolve().parent / "_blocks_ours.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable, script, json.dumps(spec), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    times: list[float | None] = []
    failures: dict[str, int] = {}
    for index, result in enumerate(out["results"]):
        seconds = result["seconds"]
        # The mid the load generator PUT (not the position: until 2026-12-07 a session that could not be set up was
        # listed after the batch's transfers, and later 2.01s were checked against mids never sent).
        assert result["index"] == index, (result["index"], index)
        held = put_held(result["mid"]) if spec["case"].startswith("put") else None
        if seconds is not None and held is not None and held != _FITS[64 * KIB]:
            seconds, result["why"] = None, f"answered 2.01 but the server holds {held} of {_FITS[64 * KIB]} targets"
        times.append(seconds)
        if seconds is None:
            failures[result["why"]] = failures.get(result["why"], 0) + 1
    return {
        "times": times,
        "failures": failures,
        "transfers": out["results"],  # per transfer: its mid, seconds, why
        "held": {mid: put_held(mid) for mid in spec["mids"]} if spec["case"].startswith("put") else {},
        "generator_cpu": out["cpu"],
        "server_cpu": (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime),
        "wall": time.monotonic() - wall,
        "qblock_counts": {k: qblock.counts[k] - counts_before.get(k, 0) for k in qblock.counts},
    }


def _delivered(case: str, data: bytes, big: bytes, mitigations: int, cbor2) -> bool:
    if case == "get 1 MiB":
        return data == big
    try:
        return len(cbor2.loads(data)[1][2]) >= mitigations  # mitigation-scope (CBOR key 1) / scope (key 2)
    except Exception:  # whatever coap-client wrote when the transfer went wrong
        return False


def _why(printed: str) -> str:
    lines = [line for line in printed.strip().splitlines() if line.strip()]
    return (lines[-1][:80] if lines else "coap-client failed without a word").strip()


def _stats(times: list[float | None]) -> tuple[str, str, str]:
    done = sorted(t for t in times if t is not None)
    total = len(times)
    if not total:
        return "-", "-", "-"
    ordered = sorted(t if t is not None else float("inf") for t in times)

    def show(value: float) -> str:
        return "not delivered" if value == float("inf") else f"{value:.2f} s"

    p50 = statistics.median_low(ordered) if total % 2 else (ordered[total // 2 - 1] + ordered[total // 2]) / 2
    p90 = ordered[min(total - 1, -(-9 * total // 10) - 1)]
    return show(p50), show(p90), f"{len(done)}/{total}"


def _line(row: dict, cap: float) -> str:
    p50, p90, done = _stats(row["times"])
    within10 = sum(1 for t in row["times"] if t is not None and t <= 10)
    transfers = len(row["times"]) or 1
    return (
        f"{row['loss']:>3} % {row['case']:<24} {row['client']:<7} {row['mode']:<7} p50 {p50:>13}  p90 {p90:>13}"
        f"  delivered {done:>6}"
        f" (within 10 s {within10}/{transfers})  generator CPU {row['generator_cpu'] / transfers:.2f} s/transfer,"
        f" server {row['server_cpu'] / transfers:.2f} s/transfer; engine {row['qblock_counts']}; {row['failures']}"
    )


def _report(results: list[dict], cap: float) -> None:
    titles = {
        "libcoap": "libcoap 4.3.5's coap-client (RFC 9177's default values; coap-client start to exit)",
        "ours": "our client stack (the RFC 9362 values negotiated for a lossy path; request to answer, session open)",
    }
    by = {(r.get("client", "libcoap"), r["loss"], r["case"], r["mode"]): r for r in results}
    empty = {"times": [], "generator_cpu": 0.0}
    for client in CLIENTS:
        if not any(key[0] == client for key in by):
            continue
        print(f"\n{titles[client]}, cap {cap:g} s")
        print(
            "| loss | body | Block1/Block2 p50 / p90 (delivered) | Q-Block p50 / p90 (delivered) |"
            " Q-Block within 10 s | Block p50 / Q-Block p50 | generator CPU per transfer (Block / Q-Block) |"
        )
        print("|---|---|---|---|---|---|---|")
        for loss in sorted({r["loss"] for r in results}):
            for case in CASES:
                block, qblock = by.get((client, loss, case, "block")), by.get((client, loss, case, "qblock"))
                if block is None and qblock is None:
                    continue
                block, qblock = block or empty, qblock or empty
                b50, b90, bdone = _stats(block["times"])
                q50, q90, qdone = _stats(qblock["times"])
                within = sum(1 for t in qblock["times"] if t is not None and t <= 10)
                cpu = [f"{r['generator_cpu'] / len(r['times']):.3f}" if r["times"] else "-" for r in (block, qblock)]
                ratio = "-"
                if b50.endswith(" s") and q50.endswith(" s"):
                    ratio = f"{float(b50[:-2]) / max(float(q50[:-2]), 1e-3):.1f}x"
                elif q50.endswith(" s") and block["times"]:
                    ratio = f"> {cap / max(float(q50[:-2]), 1e-3):.0f}x"  # Block's median past the cap
                print(
                    f"| {loss} % | {case} | {b50} / {b90} ({bdone}) | {q50} / {q90} ({qdone}) |"
                    f" {within}/{len(qblock['times'])} | {ratio} | {cpu[0]} / {cpu[1]} s |"
                )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; command: {' '.join(sys.argv)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=20, help="transfers per cell (loss, body, mode)")
    parser.add_argument("--quick", action="store_true", help="3 transfers per cell, 0 and 30 %% loss, cap 30 s")
    parser.add_argument("--loss", type=lambda text: [int(v) for v in text.split(",")], default=[0, 10, 30, 50])
    parser.add_argument("--cases", type=lambda text: text.split("|"), default=list(CASES), help="'|'-separated")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before a transfer counts as not delivered")
    parser.add_argument("--parallel", type=int, default=20, help="transfers at once in a lossy cell")
    parser.add_argument("--mitigations", type=int, default=MITIGATIONS)
    parser.add_argument("--modes", type=lambda text: text.split(","), default=list(MODES), help="block,qblock")
    parser.add_argument(
        "--clients",
        type=lambda text: text.split(","),
        default=list(CLIENTS),
        help="libcoap (coap-client, RFC 9177's defaults) and/or ours (our client stack, the negotiated values)",
    )
    parser.add_argument(
        "--get-type",
        choices=("con", "non"),
        default="con",
        help="Q-Block2 GETs as CON (the first block piggybacked) or NON requests; Block2 GETs are always CON",
    )
    parser.add_argument(
        "--robust",
        type=lambda text: dict(item.split("=", 1) for item in text.split(",")),
        default={},
        help="our client's RFC 9362 values instead of LOSSY_PATH's, e.g. non_timeout=0.30,non_receive_timeout=1.33",
    )
    parser.add_argument(
        "--trace",
        type=float,
        default=None,
        help="print the timeline (sets, probes, 2.31, 4.08) of our client's Q-Block1 PUTs taking over this many s",
    )
    parser.add_argument("--libcoap-log", type=Path, help="write each coap-client transfer's -v 7 log in this directory")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.transfers, args.loss, args.cap = 3, [0, 30], 30.0
    if args.inner:
        asyncio.run(_inner(args))
        return
    if os.geteuid() != 0:
        sys.exit("bench/blocks.py needs root (it creates a network namespace and nftables rules)")
    name = f"od-blocks-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        command = ["ip", "netns", "exec", name, sys.executable, __file__, "--inner", *sys.argv[1:]]
        out = subprocess.run(command, env=env, text=True, stdout=subprocess.PIPE, check=True).stdout
        results = json.loads(out.strip().splitlines()[-1])
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        _report(results, args.cap)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    main()
