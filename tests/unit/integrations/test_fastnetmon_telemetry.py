"""FastNetMon's ban details turned into RFC 9244 §8.2 pre-or-ongoing-mitigation telemetry: rates, attack type, top
talkers ranked by their sampled packets toward the target."""

from __future__ import annotations

import ipaddress

from opendots.integrations.fastnetmon_telemetry import ATTACK_IDS, MAX_TALKERS, parse_details, telemetry_entry
from opendots.model import decode_telemetry, encode_telemetry
from tests.helpers import FIXTURES

TARGET = ipaddress.ip_address("203.0.113.7")
# A ban of FastNetMon 1.2 (its field names as the Debian 12 binary writes them), five sampled packets toward the
# target, a reply away from it and a line no FastNetMon writes.
SAMPLE = (FIXTURES / "fastnetmon" / "ban-details-udp-flood.txt").read_text()


def test_the_rates_attack_type_and_talkers_are_read():
    details = parse_details(SAMPLE, TARGET)
    assert (details.attack_type, details.incoming_pps, details.incoming_mbps) == ("udp_flood", 25000, 20)
    # The reply toward 198.51.100.9 is not a talker of this attack; the garbage line is skipped.
    assert dict(details.talkers) == {"198.51.100.6": 3, "198.51.100.5": 2}


def test_the_entry_names_the_largest_talkers_first_with_their_single_port_and_share_of_the_rate():
    entry = telemetry_entry(parse_details(SAMPLE, TARGET), "203.0.113.7/32", 25000, vendor_id=0, start_time=1)
    assert decode_telemetry(encode_telemetry({"ietf-dots-telemetry:telemetry": {"pre-or-ongoing-mitigation": [entry]}}))
    assert entry["target"] == {"target-prefix": ["203.0.113.7/32"]}
    assert entry["total-traffic"] == [
        {"unit": "packet-ps", "current-g": "25000"},
        {"unit": "megabit-ps", "current-g": "20"},
    ]
    assert entry["total-attack-traffic"] == [{"unit": "packet-ps", "current-g": "25000"}]
    (detail,) = entry["attack-detail"]
    assert (detail["attack-id"], detail["attack-description"]) == (ATTACK_IDS["udp_flood"], "FastNetMon: udp_flood")
    assert detail["top-talker"]["talker"] == [
        {"source-prefix": "198.51.100.6/32", "total-attack-traffic": [{"unit": "packet-ps", "current-g": "15000"}]},
        {
            "source-prefix": "198.51.100.5/32",
            "source-port-range": [{"lower-port": 4000}],  # one source port: named; several (above): not
            "total-attack-traffic": [{"unit": "packet-ps", "current-g": "10000"}],
        },
    ]


def test_ipv6_packets_sample_ratios_and_the_talker_bound():
    target = ipaddress.ip_address("2001:db8:b::5")
    lines = [
        f"2026-12-06 23:00:00.1 2001:db8:a::{i:x}:53 > 2001:db8:b::5:80 protocol: tcp frag: 0  packets: 1 size: 60 "
        f"bytes ttl: 64 sample ratio: {i + 1}"
        for i in range(MAX_TALKERS + 5)
    ]
    details = parse_details("\n".join(lines), target)
    assert details.talkers["2001:db8:a::e"] == 15  # the sample ratio weighs each sampled packet
    talkers = telemetry_entry(details, "2001:db8:b::5/128", 1000)["attack-detail"][0]["top-talker"]["talker"]
    assert len(talkers) == MAX_TALKERS and talkers[0]["source-prefix"] == "2001:db8:a::e/128"
    assert talkers[0]["source-port-range"] == [{"lower-port": 53}]


def test_details_without_anything_known_still_give_a_report_of_the_target_and_its_pps():
    entry = telemetry_entry(parse_details("details", TARGET), "203.0.113.7/32", 5000)
    assert entry["total-attack-traffic"] == [{"unit": "packet-ps", "current-g": "5000"}]
    assert entry["attack-detail"] == [{"vendor-id": 0, "attack-id": 0, "attack-description": "FastNetMon: unknown"}]
