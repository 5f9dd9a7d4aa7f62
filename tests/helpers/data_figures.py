"""The RFC 8783 example figures (tests/fixtures/rfc8783): parsed into request line, headers and JSON body, and the
rewrites that make them comparable with a test server's answers. No socket: unit tests use them too."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.helpers import FIXTURES

FIGURES = FIXTURES / "rfc8783"


@dataclass
class Figure:
    number: int
    method: str | None
    path: str | None
    headers: dict[str, str]
    body: Any


def load_figure(number: int) -> Figure:
    """Parse fig-NN.txt: request line (backslash-wrapped lines joined, RFC 8783 §2), headers, JSON body."""
    text = (FIGURES / f"fig-{number:02d}.txt").read_text()
    lines = text.splitlines()[:-1]  # the last line is the caption
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + line.strip()
        else:
            joined.append(line.rstrip())
    method = path = None
    headers: dict[str, str] = {}
    body_lines: list[str] = []
    in_body = False
    for line in joined:
        stripped = line.strip()
        request = re.match(r"^(GET|POST|PUT|DELETE|PATCH)\s+(\S+)\s+HTTP/1\.1$", stripped)
        if request and not in_body:
            method, path = request.groups()
        elif not in_body and re.match(r"^[A-Za-z-]+: ", stripped):
            name, _, value = stripped.partition(": ")
            headers[name] = value
        elif stripped.startswith("{") or in_body:
            in_body = True
            body_lines.append(line)
    body = json.loads("\n".join(body_lines)) if body_lines else None
    return Figure(number, method, path, headers, body)


def with_cuid(path: str, cuid: str) -> str:
    """The figure's path with its example CUID replaced by the test certificate's (the server binds them)."""
    return re.sub(r"dots-client=[^/?]+", f"dots-client={cuid}", path)


def bare_identities(value: Any) -> Any:
    """Identityrefs without their module prefix, as the RFC's figures print them."""
    if isinstance(value, dict):
        return {key: bare_identities(item) for key, item in value.items()}
    if isinstance(value, list):
        return [bare_identities(item) for item in value]
    if isinstance(value, str) and value.startswith("ietf-access-control-list:"):
        return value.split(":", 1)[1]
    return value


def without(value: Any, member: str) -> Any:
    if isinstance(value, dict):
        return {key: without(item, member) for key, item in value.items() if key != member}
    if isinstance(value, list):
        return [without(item, member) for item in value]
    return value
