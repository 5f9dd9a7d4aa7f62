"""Bridge between ExaBGP's API process pipes and a Unix socket. Runs *inside* ExaBGP, as its API process.

ExaBGP reads commands from its API process's stdout and answers on its stdin ("done"/"error" after each command,
with any output before it). This script accepts one controller at a time on the Unix socket given as its argument,
forwards each command line to ExaBGP, and sends the answer lines back up to and including "done" or "error".
It exits as soon as ExaBGP closes its stdin, even while idle, so it never outlives its daemon.
Standard library only: ExaBGP starts it with whichever Python runs this file.
"""

import contextlib
import os
import selectors
import socket
import sys

ANSWER_END = (b"done", b"error")


def relay(command: bytes) -> bytes | None:
    """Send one command to ExaBGP and collect its whole answer; None once ExaBGP has gone."""
    sys.stdout.buffer.write(command.rstrip(b"\r\n") + b"\n")
    sys.stdout.buffer.flush()
    answer = b""
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return None
        answer += line
        if line.strip() in ANSWER_END:
            return answer


def serve(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)  # whoever can write here can announce routes
    listener.listen(1)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.buffer, selectors.EVENT_READ, "exabgp")
    selector.register(listener, selectors.EVENT_READ, "listener")
    connection = None
    pending = b""
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "exabgp":
                    # Nothing is asked of ExaBGP now: this is EOF (it has gone) or a message we did not subscribe to.
                    if not sys.stdin.buffer.readline():
                        return
                elif key.data == "listener":
                    if connection is not None:  # one controller at a time: the newest wins
                        selector.unregister(connection)
                        connection.close()
                    connection, _ = listener.accept()
                    pending = b""
                    selector.register(connection, selectors.EVENT_READ, "controller")
                else:
                    data = connection.recv(65536) if connection is not None else b""
                    if not data:
                        selector.unregister(connection)
                        connection.close()
                        connection = None
                        continue
                    pending += data
                    while b"\n" in pending:
                        command, pending = pending.split(b"\n", 1)
                        answer = relay(command)
                        if answer is None:
                            return
                        with contextlib.suppress(OSError):
                            connection.sendall(answer)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.argv[1])
