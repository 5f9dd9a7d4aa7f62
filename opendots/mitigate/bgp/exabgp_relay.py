"""Bridge between ExaBGP's API process pipes and a Unix socket. Runs *inside* ExaBGP, as its API process.

ExaBGP reads commands from its API process's stdout and answers on its stdin ("done"/"error" after each command,
with any output before it). This script accepts one controller at a time on the Unix socket given as its argument,
forwards each command line to ExaBGP, and sends the answer lines back up to and including "done" or "error".
Standard library only: ExaBGP starts it with whichever Python runs this file.
"""

import contextlib
import os
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
    try:
        while True:
            connection, _ = listener.accept()
            with connection, connection.makefile("rwb") as stream:
                try:
                    for command in stream:
                        answer = relay(command)
                        if answer is None:
                            return
                        stream.write(answer)
                        stream.flush()
                except OSError:
                    continue  # the controller went away; wait for the next one
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.argv[1])
