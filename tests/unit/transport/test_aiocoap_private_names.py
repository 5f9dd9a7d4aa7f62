"""aiocoap's non-public names are touched only in opendots/transport/aiocoap_hooks/ (README, Layout), where
tests/contract checks each against the pinned aiocoap: a private name used anywhere else would break silently on an
upgrade. The scan is static (ast): imports of aiocoap's private modules or names, attribute accesses and
getattr-style strings naming one of aiocoap's private attributes or methods, and overrides of one in a subclass of
an aiocoap class. An opendots module's own private attribute of the same name (`self._transport = ...` of its own)
is not aiocoap's, so names opendots defines itself outside the hooks are only flagged when overridden on an aiocoap
subclass."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import aiocoap

PACKAGE = Path(__file__).resolve().parents[3] / "opendots"
HOOKS = PACKAGE / "transport" / "aiocoap_hooks"
AIOCOAP = Path(aiocoap.__file__).resolve().parent
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_private_names(trees: list[ast.AST]) -> set[str]:
    """Private names the code defines: functions, classes, class-level and `x._name = ...` assignments, slots."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries, setattr names
    return {name for name in names if _private(name)}


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _aiocoap_private_names() -> set[str]:
    trees = [_parse(path) for path in AIOCOAP.rglob("*.py")]
    return {name for name in _defined_private_names(trees) if len(name) > 2}


def _aiocoap_bound_names(tree: ast.AST) -> dict[str, str]:
    """Names this module binds to aiocoap (`import aiocoap`, `from aiocoap.x import Y`) -> the dotted name bound."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aiocoap":
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else "aiocoap"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiocoap":
            bound |= {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}
    return bound


def _aiocoap_object(dotted: str) -> object:
    """The aiocoap class or module DOTTED names (importing the modules on its path)."""
    parts = dotted.split(".")
    found: object = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        if not hasattr(found, part):
            importlib.import_module(".".join(parts[:i]))
        found = getattr(found, part)
    return found


def _dotted(expression: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(expression, ast.Attribute):
        parts.insert(0, expression.attr)
        expression = expression.value
    return [expression.id, *parts] if isinstance(expression, ast.Name) else []


def _aiocoap_privates_inherited(bases: list[ast.expr], bound: dict[str, str]) -> set[str]:
    """The private attributes the aiocoap classes among BASES define (through their MRO)."""
    names: set[str] = set()
    for base in bases:
        parts = _dotted(base)
        if not parts or parts[0] not in bound:
            continue
        cls = _aiocoap_object(".".join([bound[parts[0]], *parts[1:]]))
        for klass in getattr(cls, "__mro__", ()):
            if klass.__module__.split(".")[0] == "aiocoap":
                names |= {name for name in vars(klass) if _private(name)}
    return names


def _roots(expression: ast.expr) -> str | None:
    while isinstance(expression, ast.Attribute):
        expression = expression.value
    return expression.id if isinstance(expression, ast.Name) else None


def private_uses(source: str, aiocoap_private: set[str], own_private: set[str]) -> list[str]:
    """Each use of an aiocoap private name in SOURCE, as 'line: what'."""
    tree = ast.parse(source)
    found: list[str] = []
    foreign = aiocoap_private - own_private
    bound = _aiocoap_bound_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "aiocoap" and any(_private(part) for part in parts):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiocoap":
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module} import ...")
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and node.attr in foreign:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and _roots(node.value) in bound:
            found.append(f"{node.lineno}: .{node.attr} on aiocoap")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in foreign
        ):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ClassDef) and (inherited := _aiocoap_privates_inherited(node.bases, bound)):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and member.name in inherited:
                    found.append(f"{member.lineno}: {node.name} overrides {member.name}")
    return found


def _outside_hooks() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if HOOKS not in path.parents and "__pycache__" not in path.parts
    )


def test_no_module_outside_aiocoap_hooks_touches_an_aiocoap_private_name() -> None:
    paths = _outside_hooks()
    own = _defined_private_names([_parse(path) for path in paths])
    aiocoap_private = _aiocoap_private_names()
    found = {
        str(path.relative_to(PACKAGE.parent)): uses
        for path in paths
        if (uses := private_uses(path.read_text(encoding="utf-8"), aiocoap_private, own))
    }
    assert not found, f"aiocoap private names outside opendots/transport/aiocoap_hooks/ (move them there): {found}"


def test_the_scan_finds_the_private_names_the_hooks_package_does_use() -> None:
    """The detector is not blind: run over the hooks package itself it reports what the contract tests check."""
    paths = _outside_hooks()
    own = _defined_private_names([_parse(path) for path in paths])
    aiocoap_private = _aiocoap_private_names()
    text = "\n".join(
        f"{path.name}: {use}"
        for path in sorted(HOOKS.glob("*.py"))
        for use in private_uses(path.read_text(encoding="utf-8"), aiocoap_private, own)
    )
    for expected in (
        "._backlogs",
        "._extract_block",
        "._unregister_on_event",
        "overrides _deduplicate_message",
        "overrides _ssl_",
    ):
        assert expected in text, f"{expected!r} not reported in:\n{text}"


def test_each_kind_of_private_use_is_reported() -> None:
    source = (
        "import aiocoap\n"
        "from aiocoap.messagemanager import MessageManager\n"
        "from aiocoap.util import _private_helper\n"
        "import aiocoap._private_module\n"
        "class M(MessageManager):\n"
        "    def _deduplicate_message(self, message): ...\n"
        "def f(manager, remote):\n"
        "    manager._backlogs.clear()\n"
        "    getattr(remote, '_remote_settings')\n"
        "    aiocoap._whatever\n"
    )
    uses = private_uses(source, {"_deduplicate_message", "_backlogs", "_remote_settings"}, set())
    assert sorted(int(use.split(":")[0]) for use in uses) == [3, 4, 6, 8, 9, 10], uses
