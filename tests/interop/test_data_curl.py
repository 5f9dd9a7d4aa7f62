"""The real `curl` binary, with a client certificate, drives the data channel end to end (RFC 8783 + RFC 8040)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.conftest import require_binary
from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, load_figure

harness = support.harness
pytestmark = pytest.mark.interop


async def curl(harness, pki_dir, method: str, path: str, body=None, *, cert: str | None = "client", extra=()):
    binary = require_binary("curl")
    arguments = [binary, "-sS", "--cacert", str(pki_dir / "ca.crt"), "-X", method, "-w", "\n%{http_code}"]
    if cert:
        arguments += ["--cert", str(pki_dir / f"{cert}.crt"), "--key", str(pki_dir / f"{cert}.key")]
    if body is not None:
        arguments += ["-H", "Content-Type: application/yang-data+json", "--data-binary", "@-"]
    arguments += [*extra, harness.base + path]
    process = await asyncio.create_subprocess_exec(
        *arguments, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate(json.dumps(body).encode() if body is not None else None)
    if process.returncode != 0:
        return process.returncode, None, err.decode()
    text, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(text) if text.strip().startswith("{") else text, err.decode()


async def test_curl_registration_alias_acl_retrieval_and_deletion(harness, pki_dir):
    cuid = harness.client.cuid
    status, xrd, _ = await curl(harness, pki_dir, "GET", "/.well-known/host-meta")
    assert status == 200
    root = re.search(r"rel='restconf' href='([^']+)'", xrd).group(1)
    assert root == "/restconf"
    data = f"{root}/data/ietf-dots-data-channel:dots-data"

    status, _, _ = await curl(harness, pki_dir, "POST", data, {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]})
    assert status == 201
    client = f"{data}/dots-client={cuid}"
    status, _, _ = await curl(harness, pki_dir, "POST", client, load_figure(17).body)
    assert status == 201
    status, _, _ = await curl(harness, pki_dir, "POST", client, load_figure(24).body)
    assert status == 201

    status, shallow, _ = await curl(harness, pki_dir, "GET", f"{client}?depth=2")
    assert status == 200
    assert shallow == {"ietf-dots-data-channel:dots-client": [{"cuid": cuid, "aliases": {}, "acls": {}}]}
    status, config, _ = await curl(harness, pki_dir, "GET", f"{client}/acls?content=config")
    assert status == 200
    [acl] = config["ietf-dots-data-channel:acls"]["acl"]
    assert acl["name"] == "sample-ipv4-acl" and "pending-lifetime" not in acl
    status, state, _ = await curl(harness, pki_dir, "GET", f"{client}/aliases/alias=https1?content=nonconfig")
    assert state == {"ietf-dots-data-channel:aliases": {"alias": [{"name": "https1", "pending-lifetime": 10080}]}}

    status, _, _ = await curl(harness, pki_dir, "DELETE", f"{client}/acls/acl=sample-ipv4-acl")
    assert status == 204
    status, error, _ = await curl(harness, pki_dir, "GET", f"{client}/acls/acl=sample-ipv4-acl")
    assert status == 404 and error["ietf-restconf:errors"]["error"][0]["error-tag"] == "invalid-value"
    status, _, _ = await curl(harness, pki_dir, "DELETE", client)
    assert status == 204
    assert harness.store.dump() == ""


async def test_curl_sees_restconf_errors(harness, pki_dir):
    cuid = harness.client.cuid
    await support.register(harness.client)
    status, error, _ = await curl(
        harness, pki_dir, "POST", f"{ROOT}/dots-client={cuid}", {"ietf-dots-data-channel:aliases": {"alias": [{}]}}
    )
    assert status == 400
    assert error["ietf-restconf:errors"]["error"][0]["error-tag"] == "missing-attribute"
    status, _, _ = await curl(
        harness, pki_dir, "GET", f"{ROOT}/dots-client={cuid}", extra=("-H", "Accept: application/yang-data+xml")
    )
    assert status == 406
    # The other certificate cannot see this client at all.
    status, error, _ = await curl(harness, pki_dir, "GET", f"{ROOT}/dots-client={cuid}", cert="other")
    assert status == 404


async def test_curl_without_client_certificate_fails_the_handshake(harness, pki_dir):
    code, _, stderr = await curl(harness, pki_dir, "GET", ROOT, cert=None)
    assert code != 0 and code < 100, stderr  # curl's own exit code, no HTTP status
