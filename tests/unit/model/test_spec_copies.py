"""The YANG modules and CBOR key table shipped in the package are untouched copies of the spec pack."""

from pathlib import Path

import pytest

import opendots.model
from tests.helpers import REPOSITORY

PACKAGE = Path(opendots.model.__file__).parent
SPEC = REPOSITORY.parent / "shared" / "spec"  # the spec pack sits beside the repository


@pytest.mark.skipif(not SPEC.is_dir(), reason=f"spec pack not found at {SPEC}")
def test_shipped_yang_and_keys_equal_spec_pack():
    shipped = sorted(p.name for p in (PACKAGE / "yang").glob("*.yang"))
    official = sorted(p.name for p in (SPEC / "yang").glob("*.yang"))
    assert shipped == official
    for name in official:
        assert (PACKAGE / "yang" / name).read_bytes() == (SPEC / "yang" / name).read_bytes(), name
    assert (PACKAGE / "cbor-keys.tsv").read_bytes() == (SPEC / "cbor-keys.tsv").read_bytes()
