"""Validation of a request's aliases and ACLs: size limits first (before any per-entry work), then YANG
(yangson, memoized and possibly off the loop, see body.py) and the policy checks, then domain conflicts (§7.2)."""

from __future__ import annotations

import json
from typing import Any

from opendots.config import ClientAuthorization
from opendots.data.core.body import INLINE_ENTRIES, PLACEHOLDER_KEY, PLACEHOLDER_STEP, NeedsValidation
from opendots.data.core.errors import RestconfError
from opendots.data.core.policy import check_acl, check_alias, check_capabilities
from opendots.data.core.retrieval import Retrieval
from opendots.data.records import Acl, Alias
from opendots.model.data_channel import ModelError, validate_client


class Validation(Retrieval):
    def _check_size(self, entries: int) -> None:
        """§10 quotas: ENTRIES aliases and ACLs a client would have (409 resource-denied when over the limit)."""
        if entries > self.settings.max_entries:
            limit = self.settings.max_entries
            raise RestconfError("resource-denied", f"at most {limit} aliases and ACLs per client ([data] max_entries)")

    def _check_quota(self, cuid: str, adding: int, now: float) -> None:
        self._check_size(self.store.count_entries(cuid, now) + adding)

    def _check_aces(self, acls: list[dict[str, Any]]) -> None:
        """§10 quotas: an ACL over `max_aces` is refused before any of it is validated (yangson takes ~0.5 ms
        per ACE, and each ACE is an nftables rule every packet walks)."""
        limit = self.settings.max_aces
        for acl in acls:
            aces = acl.get("aces")
            count = len(aces["ace"]) if isinstance(aces, dict) and isinstance(aces.get("ace"), list) else 0
            if count > limit:
                raise RestconfError(
                    "resource-denied",
                    f"acl {str(acl.get('name'))[:64]!r} has {count} ACEs: at most {limit} per ACL ([data] max_aces)",
                )

    def _validate(
        self,
        cuid: str,
        cdid: str | None,
        aliases: list[dict[str, Any]],
        acls: list[dict[str, Any]],
        peer: ClientAuthorization | None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Canonical aliases and ACLs after YANG validation (yangson) and the policy checks."""
        self._check_aces(acls)
        for kind, entries in (("alias", aliases), ("acl", acls)):
            names = [entry.get("name") for entry in entries]
            if len(set(map(str, names))) != len(names):
                raise RestconfError("invalid-value", f"the request names the same {kind} twice")
        shell = {"cuid": cuid} if cdid is None else {"cuid": cuid, "cdid": cdid}
        try:
            validate_client(shell)  # the client's own leaves; its aliases and ACLs one by one below
        except ModelError as error:
            raise RestconfError(error.error_tag, error.message, path=error.path) from None
        if peer is None:
            raise RestconfError("access-denied", "this client is not authorized")

        def check(list_name: str, canonical: dict[str, Any]) -> None:
            """The policy checks of one valid entry (pure: they may run off the loop with the validation)."""
            if list_name == "alias":
                check_alias(Alias.from_json(cuid, canonical), peer)
            else:
                check_capabilities(canonical, self.settings.capabilities)
                check_acl(Acl.from_json(cuid, canonical), peer)

        prepared = self._prepared
        if prepared.inline_bytes is not None and len(aliases) + len(acls) > INLINE_ENTRIES:
            unkeyed = [
                (name, entry)
                for name, entries in (("alias", aliases), ("acl", acls))
                for entry in entries
                if not prepared.keyed(entry)
            ]
            if unkeyed:  # keying them is already too much for the loop: key and validate them in the worker
                raise NeedsValidation(unkeyed, check)
        keys = {
            name: [prepared.key(name, entry) for entry in entries]
            for name, entries in (("alias", aliases), ("acl", acls))
        }
        missing = [
            (name, entry, key)
            for name, entries in (("alias", aliases), ("acl", acls))
            for key, entry in zip(keys[name], entries, strict=True)
            if key not in prepared.canonical
        ]
        work = [(name, entry) for name, entry, _ in missing]
        if prepared.inline_bytes is not None and sum(len(key) for *_, key in missing) > prepared.inline_bytes:
            raise NeedsValidation(work, check)
        prepared.validate(work, check)
        # Every entry's YANG errors before any policy error, in body order, as one validation of the whole would.
        results = [prepared.canonical[key] for name in ("alias", "acl") for key in keys[name]]
        for canonical, _ in results:
            if isinstance(canonical, ModelError):
                # Validated under a placeholder client (the memo does not depend on who asks): name the real one.
                message, path = (
                    text.replace(PLACEHOLDER_STEP, f"dots-client={cuid}").replace(PLACEHOLDER_KEY, f'[cuid="{cuid}"]')
                    if text is not None
                    else None
                    for text in (canonical.message, canonical.path)
                )
                raise RestconfError(canonical.error_tag, message or "", path=path)
        for _, refused in results:
            if refused is not None:
                raise refused
        result = {
            "aliases": [prepared.canonical[key][0] for key in keys["alias"]],
            "acls": [prepared.canonical[key][0] for key in keys["acl"]],
        }
        if result["acls"] and cdid is not None and self.settings.domain_conflicts == "reject":
            self._check_domain_conflicts(cuid, cdid, result["acls"])
        return result  # type: ignore[return-value]

    def _check_domain_conflicts(self, cuid: str, cdid: str, acls: list[dict[str, Any]]) -> None:
        """409 if an ACE matches exactly what another client of the domain filters with the opposite action."""
        actions_by_match: dict[str, str] = {}
        for _, stored in self.store.domain_acls(cdid, cuid, now=self._now):
            for ace in stored.body.get("aces", {}).get("ace", []):
                actions_by_match[_match_key(ace)] = ace["actions"]["forwarding"]
        if not actions_by_match:
            return
        for acl in acls:
            for ace in acl.get("aces", {}).get("ace", []):
                other = actions_by_match.get(_match_key(ace))
                if other is not None and other != ace["actions"]["forwarding"]:
                    raise RestconfError(
                        "resource-denied",
                        f"ACE {ace['name']!r} conflicts with a filter another client of this domain installed",
                        status=409,
                    )


def _match_key(ace: dict[str, Any]) -> str:
    return json.dumps(ace.get("matches", {}), sort_keys=True)
