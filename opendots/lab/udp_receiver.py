"""A bounded UDP receiver, run as a script inside the victim namespace (it imports nothing of OpenDOTS).

It records when traffic stops and resumes: every silence longer than GAP seconds between two datagrams, on
CLOCK_MONOTONIC (shared by all namespaces, so the caller can line the gaps up with its own timestamps).
Runs for DURATION seconds (or until IDLE seconds pass without traffic once some came), then prints
{"received": n, "first": t, "last": t, "gaps": [[from, to], ...]}.
"""

import argparse
import json
import socket
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--gap", type=float, default=0.005)
    parser.add_argument("--idle", type=float, default=1.0, help="stop after this long without traffic, once started")
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((args.address, args.port))
    deadline = time.monotonic() + min(args.duration, 120.0)
    received, first, last, gaps = 0, None, None, []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining if last is None else min(remaining, args.idle))
        try:
            sock.recv(2048)
        except TimeoutError:
            break
        now = time.monotonic()
        received += 1
        if first is None:
            first = now
        elif now - last > args.gap:
            gaps.append([last, now])
        last = now
    print(json.dumps({"received": received, "first": first, "last": last, "gaps": gaps}), flush=True)


if __name__ == "__main__":
    main()
