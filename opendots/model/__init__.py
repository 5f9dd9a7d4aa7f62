"""The DOTS data model: CBOR key table ⇄ YANG names, YANG validation, typed records. Pure: no I/O."""
