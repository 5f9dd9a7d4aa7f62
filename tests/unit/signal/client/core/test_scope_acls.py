"""RFC 9133 'acl-list' in the client's mitigation scope: what is sent, what is read back, what is refused locally."""

from __future__ import annotations

import pytest

from opendots.signal.client.core.scope import AclActivation, MitigationScope, ScopeError, parse_acl

ACL_LIST = "ietf-dots-signal-control:acl-list"


def test_acl_list_is_sent_after_the_targets_and_read_back_unchanged_rfc9133_3_2_1() -> None:
    scope = MitigationScope(
        target_prefixes=("2001:db8:6401::2/127",),
        target_protocols=(17,),
        acl_list=(parse_acl("an-accept-list=deactivate"), parse_acl("other")),
    )
    entry = scope.to_yang()
    assert entry[ACL_LIST] == [{"acl-name": "an-accept-list", "activation-type": "deactivate"}, {"acl-name": "other"}]
    assert MitigationScope.from_yang(entry) == scope
    assert scope.with_lifetime(60).acl_list == scope.acl_list  # refreshes and re-creations repeat it
    assert "acl-list" not in str(MitigationScope(target_prefixes=("192.0.2.0/24",)).to_yang())


@pytest.mark.parametrize(
    ("acls", "trigger", "message"),
    [
        ((("a", "now"),), True, "activation type 'now' of ACL 'a'"),
        ((("a", None), ("a", "immediate")), True, "named twice"),
        ((("a", None),), False, "trigger-mitigation false"),
    ],
)
def test_a_bad_acl_list_fails_before_anything_is_sent(acls: tuple, trigger: bool, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        built = tuple(AclActivation(*acl) for acl in acls)
        MitigationScope(target_prefixes=("192.0.2.0/24",), acl_list=built, trigger_mitigation=trigger)


@pytest.mark.parametrize("text", ["", "=immediate", " =deactivate"])
def test_an_empty_acl_name_is_refused(text: str) -> None:
    with pytest.raises(ScopeError, match="ACL name must not be empty"):
        parse_acl(text)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("web", "must be a list of objects"),
        ([{"acl-name": "web", "lifetime": 3}], "not \\['lifetime'\\]"),
        ([{"activation-type": "immediate"}], "ACL name must not be empty"),
    ],
)
def test_a_control_api_scope_with_a_malformed_acl_list_is_refused(items: object, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        MitigationScope.from_yang({"target-prefix": ["192.0.2.0/24"], ACL_LIST: items})
