"""The audit log (opendots.audit): who changed what, before and after, when; as JSON lines in [audit] file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opendots.audit import AuditLog
from opendots.config import ConfigError, ServerConfig
from opendots.pki.setup import init_pki


def test_each_entry_is_one_json_line_naming_who_what_before_after_and_when(tmp_path: Path):
    audit = AuditLog.open(tmp_path / "audit.jsonl", clock=lambda: 1000.0)
    audit.record("operator (admin socket)", "redirection cleared", "every client", {"alt-server": "x"}, None)
    audit.close()
    (line,) = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "at": 1000.0,
        "who": "operator (admin socket)",
        "what": "redirection cleared",
        "subject": "every client",
        "before": {"alt-server": "x"},
        "after": None,
    }


def test_a_mitigation_status_is_recorded_only_when_it_changes_and_its_end_once():
    audit = AuditLog()
    audit.status_changed("alpha", "c/1", "attack-mitigation-in-progress")
    audit.status_changed("alpha", "c/1", "attack-mitigation-in-progress")  # new counters: no change
    audit.status_changed("alpha", "c/1", "attack-successfully-mitigated")  # a mitigator's report
    audit.status_changed("alpha", "c/1", "dots-client-withdrawn-mitigation")  # the client's DELETE
    audit.status_changed("alpha", "c/1", "attack-mitigation-terminated")
    audit.status_changed("alpha", "c/1", "attack-mitigation-terminated")  # observers of all mids: same end
    assert [(e["who"], e["what"], e["before"], e["after"]) for e in audit.entries] == [
        ("client alpha", "mitigation requested", None, "attack-mitigation-in-progress"),
        ("server", "mitigation status", "attack-mitigation-in-progress", "attack-successfully-mitigated"),
        ("client alpha", "mitigation status", "attack-successfully-mitigated", "dots-client-withdrawn-mitigation"),
        ("server", "mitigation ended", "dots-client-withdrawn-mitigation", "attack-mitigation-terminated"),
    ]


def test_an_operators_termination_is_not_recorded_again_when_the_signal_channel_reports_it():
    audit = AuditLog()
    audit.status_changed("alpha", "c/2", "attack-mitigation-in-progress")
    audit.record(
        "operator", "mitigation terminated", "c/2", "attack-mitigation-in-progress", "attack-mitigation-terminated"
    )
    audit.status_changed("alpha", "c/2", "attack-mitigation-terminated")
    assert [e["what"] for e in audit.entries] == ["mitigation requested", "mitigation terminated"]


def test_the_audit_file_is_a_server_toml_key_and_an_unwritable_one_stops_the_start(tmp_path: Path):
    config, _ = init_pki(tmp_path)
    config.audit_file = tmp_path / "audit.jsonl"
    config.save(tmp_path / "server.toml")
    assert ServerConfig.load(tmp_path / "server.toml").audit_file == tmp_path / "audit.jsonl"
    config.audit_file = "-"
    config.save(tmp_path / "server.toml")
    assert ServerConfig.load(tmp_path / "server.toml").audit_file == "-"
    with pytest.raises(ConfigError, match=r"\[audit\] file .*absent"):
        AuditLog.open(tmp_path / "absent" / "audit.jsonl")
