"""Random damage to a decoded body for the property tests of the model's fast paths: up to two maps or lists in it
get a member replaced, a member added or an item appended, drawn by hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def containers(item: Any) -> list[Any]:
    """Every map and list in ITEM, ITEM first."""
    found = [item] if isinstance(item, dict | list) else []
    for child in item.values() if isinstance(item, dict) else item if isinstance(item, list) else []:
        found.extend(containers(child))
    return found


def mutate(data: st.DataObject, obj: Any, keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> None:
    """Change OBJ in place, 0 to 2 times: a member's value replaced, a member (a key drawn from KEYS) added, or a
    value appended to a list (values drawn from VALUES)."""
    for _ in range(data.draw(st.integers(0, 2))):
        target = data.draw(st.sampled_from(containers(obj)))
        if isinstance(target, dict) and target and data.draw(st.booleans()):
            target[data.draw(st.sampled_from(sorted(target, key=repr)))] = data.draw(values)
        elif isinstance(target, dict):
            target[data.draw(keys)] = data.draw(values)
        else:
            target.append(data.draw(values))
