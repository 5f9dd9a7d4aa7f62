"""A bounded packet sender, run as a script inside the attacker namespace (it imports nothing of OpenDOTS).

It stops at whichever comes first: COUNT packets sent or DURATION seconds elapsed. There is no unbounded mode.
Prints one JSON line: {"sent": packets, "seconds": elapsed, "cpu": CPU seconds used}.
"""

import argparse
import json
import resource
import socket
import time

MAX_COUNT = 10_000_000
MAX_DURATION = 60.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("destination")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--pps", type=float, default=0.0, help="0: as fast as possible")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--source-port", type=int, default=0)
    parser.add_argument("--protocol", type=int, default=17, help="17: UDP socket; anything else: raw IP packets")
    parser.add_argument("--tcp-flags", type=int, default=0, help="raw packets: TCP flags byte (offset 13)")
    parser.add_argument(
        "--source-address", default="", help="send from this address (one of the namespace's; raw packets too)"
    )
    args = parser.parse_args()
    count = max(0, min(args.count, MAX_COUNT))
    duration = max(0.0, min(args.duration, MAX_DURATION))

    family = socket.AF_INET6 if ":" in args.destination else socket.AF_INET
    if args.protocol == 17:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if args.source_port or args.source_address:
            wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((args.source_address or wildcard, args.source_port))
        sock.connect((args.destination, args.port))
    else:
        # Raw socket: the kernel writes the IP header with this protocol number; the payload starts with the port
        # in the place a transport header keeps its destination port, so port-aware rules see it too.
        sock = socket.socket(family, socket.SOCK_RAW, args.protocol)
        if args.source_address:
            sock.bind((args.source_address, 0))
        sock.connect((args.destination, 0))
    payload = bytes(args.size)
    if args.protocol != 17:
        header = bytearray(payload.ljust(20, b"\0"))
        header[0:4] = args.source_port.to_bytes(2, "big") + args.port.to_bytes(2, "big")
        header[12] = 0x50  # a TCP-like data offset (5 words), then the flags byte
        header[13] = args.tcp_flags & 0xFF
        payload = bytes(header)
    sock.setblocking(True)

    start = time.monotonic()
    deadline = start + duration
    interval = 1.0 / args.pps if args.pps > 0 else 0.0
    sent = 0
    send = sock.send
    while sent < count:
        now = time.monotonic()
        if now >= deadline:
            break
        if interval:
            due = start + sent * interval
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.01:
                # Descheduled for a while: resume the pace instead of catching up with a burst that could
                # overflow a queue on the path and lose packets no mitigator dropped.
                start = now - sent * interval
        burst = min(64, count - sent) if not interval else 1
        for _ in range(burst):
            try:
                send(payload)
                sent += 1
            except (BlockingIOError, ConnectionRefusedError, OSError):
                # ICMP errors from the victim surface on a connected socket; they do not stop a flood.
                pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU time includes the forwarding path: veth delivery runs in the sender's own softirq context.
    report = {"sent": sent, "seconds": time.monotonic() - start, "cpu": usage.ru_utime + usage.ru_stime}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
