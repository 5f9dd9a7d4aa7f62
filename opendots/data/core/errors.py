"""RESTCONF errors (RFC 8040 §7): one exception type carrying the status code and the `errors` body."""

from __future__ import annotations

from typing import Any

# RFC 8040 §7: error-tag → the status code used when a caller gives none.
DEFAULT_STATUS = {
    "in-use": 409,
    "invalid-value": 400,
    "too-big": 413,
    "missing-attribute": 400,
    "bad-attribute": 400,
    "unknown-attribute": 400,
    "bad-element": 400,
    "unknown-element": 400,
    "unknown-namespace": 400,
    "access-denied": 403,
    "lock-denied": 409,
    "resource-denied": 409,
    "rollback-failed": 500,
    "data-exists": 409,
    "data-missing": 409,
    "operation-not-supported": 405,
    "operation-failed": 500,
    "partial-operation": 500,
    "malformed-message": 400,
}


class RestconfError(Exception):
    """A request the server refuses; rendered as an `ietf-restconf:errors` body with STATUS."""

    def __init__(
        self,
        error_tag: str,
        message: str,
        *,
        status: int | None = None,
        error_type: str = "application",
        path: str | None = None,
        app_tag: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_tag = error_tag
        self.message = message
        self.status = status if status is not None else DEFAULT_STATUS[error_tag]
        self.error_type = error_type
        self.path = path
        self.app_tag = app_tag
        self.info = info

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"error-type": self.error_type, "error-tag": self.error_tag}
        if self.app_tag:
            error["error-app-tag"] = self.app_tag
        if self.path:
            error["error-path"] = self.path
        error["error-message"] = self.message
        if self.info:
            error["error-info"] = self.info
        return {"ietf-restconf:errors": {"error": [error]}}


def not_found(what: str) -> RestconfError:
    """404 for a missing resource, and for another client's resource: both look exactly the same."""
    return RestconfError("invalid-value", f"{what} does not exist", status=404, error_type="protocol")
