"""Mitigators: what turns an accepted DOTS mitigation into enforcement (nftables, BGP, ...)."""
