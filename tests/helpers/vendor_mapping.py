"""RFC 9244 §8.1.6 vendor attack mapping bodies for the data channel tests (the data channel's bodies are not in
tests/fixtures, see its README)."""

from __future__ import annotations

MAPPING = "ietf-dots-mapping:vendor-mapping"

# RFC 9244 Figure 30 (the body of the POST that installs a client's mapping).
FIGURE_30 = {
    MAPPING: {
        "vendor": [
            {
                "vendor-id": 345,
                "vendor-name": "mitigator-c",
                "last-updated": "1629898958",
                "attack-mapping": [
                    {"attack-id": 1, "attack-description": "Include a description of this attack"},
                    {"attack-id": 2, "attack-description": "Again, include a description of the attack"},
                ],
            }
        ]
    }
}
