"""RFC 8040 §4.8 query parameters: parsing, and the `depth` / `fields` selections applied to a JSON reply."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opendots.data.core.errors import RestconfError
from opendots.model.data_channel import ContentFilter

ALLOWED = {
    "GET": {"content", "depth", "fields"},
    "HEAD": {"content", "depth", "fields"},
    "POST": {"insert", "point"},
    "PUT": {"insert", "point"},
    "PATCH": set(),
    "DELETE": set(),
    "OPTIONS": set(),
}
INSERT_MODES = ("first", "last", "before", "after")

Fields = dict[str, "Fields | None"]


@dataclass(frozen=True)
class QueryParameters:
    content: ContentFilter = field(default_factory=ContentFilter)
    depth: int | None = None  # None: unbounded
    fields: Fields | None = None
    insert: str | None = None
    point: str | None = None


def bad_query(message: str) -> RestconfError:
    return RestconfError("invalid-value", message, error_type="protocol")


def parse_query(method: str, pairs: Iterable[tuple[str, str]]) -> QueryParameters:
    """Validate the query of a request (each name at most once, only the names METHOD allows)."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise bad_query(f"query parameter {name!r} given more than once")
        if name not in ALLOWED.get(method, set()):
            raise bad_query(f"query parameter {name!r} is not allowed with {method}")
        values[name] = value
    try:
        content = ContentFilter.parse(values.get("content"))
    except ValueError as error:
        raise bad_query(str(error)) from None
    depth = None
    if "depth" in values and values["depth"] != "unbounded":
        if not values["depth"].isdigit() or not 1 <= int(values["depth"]) <= 65535:
            raise bad_query("depth must be an integer from 1 to 65535 or 'unbounded'")
        depth = int(values["depth"])
    insert = values.get("insert")
    if insert is not None and insert not in INSERT_MODES:
        raise bad_query(f"insert must be one of {', '.join(INSERT_MODES)}")
    point = values.get("point")
    if insert in ("before", "after") and point is None:
        raise bad_query(f"insert={insert} needs a point parameter")
    if point is not None and insert not in ("before", "after"):
        raise bad_query("point is only allowed with insert=before or insert=after")
    fields = parse_fields(values["fields"]) if "fields" in values else None
    return QueryParameters(content, depth, fields, insert, point)


def parse_fields(expression: str) -> Fields:
    """Parse `fields-expr` (RFC 8040 §4.8.3), e.g. `name;aces/ace(name;actions)`."""
    parser = _FieldsParser(expression)
    result = parser.expression()
    if parser.position != len(expression):
        raise bad_query(f"fields: unexpected {expression[parser.position :]!r}")
    return result


class _FieldsParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def _identifier(self) -> str:
        start = self.position
        while self.position < len(self.text) and self.text[self.position] not in "/;()":
            self.position += 1
        name = self.text[start : self.position]
        if not name:
            raise bad_query(f"fields: identifier expected at offset {start}")
        return name.split(":", 1)[-1]

    def expression(self) -> Fields:
        result: Fields = {}
        while True:
            names = [self._identifier()]
            while self._peek("/"):
                self.position += 1
                names.append(self._identifier())
            leaf: Fields | None = None
            if self._peek("("):
                self.position += 1
                leaf = self.expression()
                if not self._peek(")"):
                    raise bad_query("fields: ')' expected")
                self.position += 1
            _merge_path(result, names, leaf)
            if not self._peek(";"):
                return result
            self.position += 1

    def _peek(self, char: str) -> bool:
        return self.position < len(self.text) and self.text[self.position] == char


def _merge_path(tree: Fields, names: list[str], leaf: Fields | None) -> None:
    for name in names[:-1]:
        existing = tree.get(name)
        if existing is None:
            existing = tree[name] = {}
        tree = existing
    last = names[-1]
    if leaf is None or tree.get(last, {}) is None:
        tree[last] = None if leaf is None else tree.get(last)
    else:
        merged = tree.setdefault(last, {})
        assert merged is not None
        merged.update(leaf)


def prune_depth(value: Any, depth: int, level: int = 1) -> Any:
    """VALUE (of a node at LEVEL) without descendants deeper than DEPTH (RFC 8040 §4.8.2, Appendix B.3.2)."""
    if isinstance(value, dict):
        if level >= depth:
            return {}
        return {member: prune_depth(child, depth, level + 1) for member, child in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        if level >= depth:
            return []  # still a list: RFC 7951 §5.4 encodes a list as an array, whatever depth cut from it
        return [{member: prune_depth(child, depth, level + 1) for member, child in entry.items()} for entry in value]
    return value


def select_fields(value: Any, fields: Fields, depth: int | None) -> Any:
    """The members of VALUE (a container, or a list's entries) that FIELDS selects."""
    if isinstance(value, list):
        return [select_fields(entry, fields, depth) for entry in value if isinstance(entry, dict)]
    if not isinstance(value, dict):
        return value
    result = {}
    for member, child in value.items():
        selection = fields.get(member.split(":", 1)[-1], False)
        if selection is False:
            continue
        if selection is None:
            result[member] = prune_depth(child, depth) if depth is not None else child
        else:
            result[member] = select_fields(child, selection, depth)
    return result
