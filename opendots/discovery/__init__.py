"""DOTS agent discovery (RFC 8973): explicit configuration, then DHCP, then S-NAPTR, then DNS-SD.

records.py holds what a discovery yields, dhcp.py the DHCPv4/DHCPv6 option parsers, naptr.py the sans-I/O S-NAPTR
and SRV ordering, cache.py the TTL cache; resolve.py (dnspython) and discover.py do the I/O.
"""
