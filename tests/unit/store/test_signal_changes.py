"""SignalChanges is empty exactly when none of its lists holds anything: a decision storing one thing of any kind
is written (durable first, RFC 9132 §4.4.1), one storing nothing costs no write."""

from __future__ import annotations

import dataclasses

import pytest

from opendots.store.records import SignalChanges


def test_no_changes_are_empty() -> None:
    assert not SignalChanges()


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(SignalChanges)])
def test_one_change_of_any_kind_is_something_to_store(name: str) -> None:
    assert SignalChanges(**{name: [object()]})
