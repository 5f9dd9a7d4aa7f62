"""Request bodies of the data channel: JSON parsing (RFC 7951) and the per-request memo of validated entries.

Both are pure CPU work on the request's own bytes, never the store, so the HTTP shell may run them in a worker
thread: a body of several MB must not hold the event loop (the signal channel shares it). The sans-I/O core asks
for that by raising `NeedsValidation` before it changes anything; the shell validates the entries it names off
the loop, into `Prepared.canonical`, and hands the request to the core again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import MEDIA_TYPE
from opendots.model.data_channel import ModelError, canonical_entries

# Entry validation done inline on one request before the core hands it to a worker thread instead, counted in
# bytes of the entries' JSON: yangson takes ~40 µs per 100 bytes, so this keeps a request's inline share ~1 ms.
INLINE_VALIDATION_BYTES = 4096
# Entries a request may have before even their memo keys (one json.dumps each, ~4 µs) are computed off the loop.
INLINE_ENTRIES = 64
# Entries are validated under this client (the memo must not depend on who asks); errors name the real one.
PLACEHOLDER_CUID = "-"
PLACEHOLDER_STEP = f"dots-client={PLACEHOLDER_CUID}"
PLACEHOLDER_KEY = f'[cuid="{PLACEHOLDER_CUID}"]'


Check = Callable[[str, dict[str, Any]], None]  # policy checks of one valid entry; raises RestconfError


class NeedsValidation(Exception):
    """Raised by the core before any change: key and validate ENTRIES ((list name, raw entry)) and apply CHECK to
    them off the loop (`Prepared.validate`), then hand the request to the core again."""

    def __init__(self, entries: list[tuple[str, dict[str, Any]]], check: Check) -> None:
        super().__init__(f"{len(entries)} entries to validate")
        self.entries = entries
        self.check = check


@dataclass
class Prepared:
    """What the shell computed for one request off the loop: its parsed body and its validated entries."""

    body: Any = None  # the parsed body, or a RestconfError to answer with; None: not parsed yet
    # memo key → (canonical entry or its YANG error, its policy refusal or None)
    canonical: dict[str, tuple[dict[str, Any] | ModelError, RestconfError | None]] = field(default_factory=dict)
    inline_bytes: int | None = INLINE_VALIDATION_BYTES  # None: validate whatever is left inline
    # id(entry) → (entry, its memo key): the request's own entry objects are keyed once, off the loop for a large
    # body. The entry is kept so that its id cannot be reused by another object while this lives.
    keys: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)

    def key(self, list_name: str, entry: dict[str, Any]) -> str:
        known = self.keys.get(id(entry))
        if known is not None and known[0] is entry:
            return known[1]
        key = memo_key(list_name, entry)
        self.keys[id(entry)] = (entry, key)
        return key

    def keyed(self, entry: dict[str, Any]) -> bool:
        known = self.keys.get(id(entry))
        return known is not None and known[0] is entry

    def validate(self, entries: list[tuple[str, dict[str, Any]]], check: Check) -> None:
        """Validate ENTRIES into the memo, then CHECK the valid ones; errors are remembered, to be raised in the
        request's own order."""
        by_list: dict[str, dict[str, dict[str, Any]]] = {}
        for list_name, entry in entries:
            key = self.key(list_name, entry)
            if key not in self.canonical:
                by_list.setdefault(list_name, {})[key] = entry
        for list_name, pending in by_list.items():
            results = canonical_entries(list_name, list(pending.values()), {"cuid": PLACEHOLDER_CUID})
            for key, canonical in zip(pending, results, strict=True):
                refused = None
                if not isinstance(canonical, ModelError):
                    try:
                        check(list_name, canonical)
                    except RestconfError as error:
                        refused = error
                self.canonical[key] = (canonical, refused)


def memo_key(list_name: str, entry: dict[str, Any]) -> str:
    # Member order counts (a reordered copy is only a miss): cheaper than sort_keys, and each key is hashed once.
    return list_name + json.dumps(entry, separators=(",", ":"))


def parse_body(method: str, content_type: str | None, raw: bytes) -> Any:
    """The JSON object of a POST/PUT/PATCH body, or RestconfError (415 for another media type, 400 if not JSON)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != MEDIA_TYPE:
        raise RestconfError(
            "invalid-value",
            f"request bodies must be {MEDIA_TYPE}, not {media or 'absent'}",
            status=415,
            error_type="protocol",
        )
    if not raw.strip():
        raise RestconfError("invalid-value", f"{method} needs a message body", error_type="protocol")
    try:
        body = json.loads(raw, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise RestconfError("malformed-message", f"the body is not JSON: {error}", error_type="rpc") from None
    if not isinstance(body, dict):
        raise RestconfError("malformed-message", "the body must be a JSON object", error_type="rpc")
    return body


def parse_or_error(method: str, content_type: str | None, raw: bytes) -> Any:
    """parse_body, with a refusal returned instead of raised (for a worker thread's result)."""
    try:
        return parse_body(method, content_type, raw)
    except RestconfError as error:
        return error


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """RFC 7951 (and RFC 8259 §4 interoperability): a member name appears once per object."""
    result = dict(pairs)
    if len(result) != len(pairs):
        # One count per name, never a scan of the pairs per pair: 100,000 repeats must stay cheap.
        counts = Counter(name for name, _ in pairs)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        shown = ", ".join(name[:64] for name in duplicates[:5])
        more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
        raise ValueError(f"duplicate member(s) {shown}{more}")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
