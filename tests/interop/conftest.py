"""Interop tests run with every server-built body validated (production skips it for speed).

The lead may move this fixture to tests/conftest.py so that every suite gets it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opendots.model.codec import validate_every_encoding


@pytest.fixture(autouse=True, scope="session")
def _validate_every_encoding() -> Iterator[None]:
    validate_every_encoding()
    yield
    validate_every_encoding(False)
