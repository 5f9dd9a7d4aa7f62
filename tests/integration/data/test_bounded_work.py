"""No data-channel body can stall the server: work is linear in the body, over-limit bodies are refused before
per-entry work, heavy work runs off the event loop, and slow clients are dropped (RFC 8783 §10, RFC 8040)."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from yangson.instance import ArrayEntry

from opendots.config import ConfigError
from opendots.data.core import DataChannelSettings
from opendots.data.core import body as body_module
from opendots.data.core.body import parse_body
from opendots.data.core.errors import RestconfError
from opendots.data.shell.settings import HttpTimeouts, data_settings_from_table, timeouts_from_table
from opendots.model.data_channel import validate_client
from tests.helpers import data_harness as support
from tests.helpers.data_harness import JSON, ROOT, client_ssl, make_harness, register

harness = support.harness


def _count_yangson_steps(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the list entries yangson's zipper copies while walking lists (its quadratic part)."""
    copied = {"items": 0}
    original = ArrayEntry.next

    def counting_next(self):
        copied["items"] += len(self.after)
        return original(self)

    monkeypatch.setattr(ArrayEntry, "next", counting_next)
    return copied


def test_100000_repeated_member_names_are_refused_in_linear_time():
    """RFC 7951 §4 / RFC 8259 §4: one name per object. The old check scanned all pairs per pair (27.9 s at 30,000
    repeats); the bound here is generous for a noisy machine and far below the quadratic cost."""
    body = b"{" + b",".join(b'"a":1' for _ in range(100_000)) + b"}"
    started = time.perf_counter()
    with pytest.raises(RestconfError) as error:
        parse_body("POST", JSON, body)
    assert time.perf_counter() - started < 2.0
    assert error.value.error_tag == "malformed-message" and "duplicate member(s) a" in error.value.message


def test_many_aliases_are_validated_with_work_linear_in_their_number(monkeypatch: pytest.MonkeyPatch):
    """Validating n aliases walks each list in bounded slices: the items yangson copies grow linearly (the
    whole-list walk copied n²/2 of them: 2,000 aliases -> ~2,000,000)."""
    copied = _count_yangson_steps(monkeypatch)
    aliases = [{"name": f"a{i}", "target-prefix": [f"10.0.{i % 256}.0/24"]} for i in range(2000)]
    canonical = validate_client({"cuid": "c", "aliases": {"alias": aliases}})
    assert [alias["name"] for alias in canonical["aliases"]["alias"]] == [f"a{i}" for i in range(2000)]
    assert copied["items"] < 2000 * 200, copied


def test_a_long_leaf_list_is_validated_in_slices_and_an_error_names_its_real_index(monkeypatch):
    copied = _count_yangson_steps(monkeypatch)
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(3000)]
    canonical = validate_client({"cuid": "c", "aliases": {"alias": [{"name": "x", "target-prefix": prefixes}]}})
    assert canonical["aliases"]["alias"][0]["target-prefix"] == prefixes
    assert copied["items"] < 3000 * 200, copied
    prefixes[2500] = "300.0.0.0/8"
    with pytest.raises(Exception) as error:
        validate_client({"cuid": "c", "aliases": {"alias": [{"name": "x", "target-prefix": prefixes}]}})
    assert "target-prefix/2500" in str(error.value.path)


async def test_a_post_over_the_entry_limit_is_refused_before_any_entry_is_validated(
    pki_dir: Path, server_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """RFC 8783 §10 quotas: 40,000 aliases against a limit of 100 are counted and refused (the old code validated
    all of them first: 39 s)."""
    validated = {"entries": 0}
    original = body_module.canonical_entries

    def counting(list_name, items, *args, **kwargs):
        validated["entries"] += len(items)
        return original(list_name, items, *args, **kwargs)

    monkeypatch.setattr(body_module, "canonical_entries", counting)
    h, close = await make_harness(pki_dir, server_config, tmp_path, DataChannelSettings(max_entries=100))
    try:
        await register(h.client)
        aliases = [{"name": f"a{i}", "target-prefix": ["192.0.2.0/28"]} for i in range(40_000)]
        before = h.store.dump()
        reply = await h.client.request(
            "POST", f"{ROOT}/dots-client={h.client.cuid}", {"ietf-dots-data-channel:aliases": {"alias": aliases}}
        )
        assert reply.status == 409 and "at most 100" in reply.text
        assert validated["entries"] == 0
        assert h.store.dump() == before
    finally:
        await close()


async def test_a_large_legal_post_is_validated_off_the_event_loop_while_the_loop_stays_responsive(
    harness, monkeypatch: pytest.MonkeyPatch
):
    """Validation of 500 ACLs runs in a worker thread: a ticker on the loop keeps ticking meanwhile, and the
    request is answered only after its write is committed."""
    import threading

    threads: set[str] = set()
    original = body_module.canonical_entries

    def recording(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(body_module, "canonical_entries", recording)
    await register(harness.client)
    acls = [
        {
            "name": f"acl{i}",
            "aces": {
                "ace": [
                    {
                        "name": "r1",
                        "matches": {"ipv4": {"destination-ipv4-network": "192.0.2.0/28"}},
                        "actions": {"forwarding": "drop"},
                    }
                ]
            },
        }
        for i in range(500)
    ]
    reply = await harness.client.request(
        "POST", f"{ROOT}/dots-client={harness.client.cuid}", {"ietf-dots-data-channel:acls": {"acl": acls}}
    )
    assert reply.status == 201, reply.text
    assert threads and threading.main_thread().name not in threads
    names = [entry.name for entry in harness.store.list_acls(harness.client.cuid, harness.clock.now)]
    assert names == [f"acl{i}" for i in range(500)]  # in body order, committed before the 201


# ---- timeouts -------------------------------------------------------------------------------------------------


def test_the_timeouts_of_data_are_read_and_a_bad_value_is_refused_with_its_key():
    assert timeouts_from_table({}) == HttpTimeouts()
    assert timeouts_from_table({"header_timeout": 2, "body_timeout": 3.5, "keepalive_timeout": 4}) == HttpTimeouts(
        2.0, 3.5, 4.0
    )
    for key in ("header_timeout", "body_timeout", "keepalive_timeout"):
        for bad in (0, -1, "10", True, 1e9):
            with pytest.raises(ConfigError, match=key):
                data_settings_from_table([], {key: bad})


async def _timed_server(pki_dir: Path, server_config, tmp_path: Path):
    server_config.data = {"header_timeout": 0.5, "body_timeout": 0.5, "keepalive_timeout": 0.5}
    return await make_harness(pki_dir, server_config, tmp_path)


async def _tls_stream(pki_dir: Path, base: str):
    host, port = base.removeprefix("https://").split(":")
    context = client_ssl(pki_dir, "client")
    return await asyncio.open_connection(host, int(port), ssl=context, server_hostname="localhost")


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(), seconds)  # read() returns at EOF
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


async def test_a_client_trickling_its_request_head_is_disconnected_after_header_timeout(
    pki_dir: Path, server_config, tmp_path: Path
):
    h, close = await _timed_server(pki_dir, server_config, tmp_path)
    try:
        reader, writer = await _tls_stream(pki_dir, h.base)
        head = b"GET /restconf/data/ietf-dots-data-channel:dots-data HTTP/1.1\r\nHost: x\r\n"
        started = time.monotonic()
        closed = False
        for byte in head:  # one byte every 0.1 s: never a whole head
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionError, ssl.SSLError):
                closed = True
                break
            await asyncio.sleep(0.1)
            if reader.at_eof():
                closed = True
                break
        closed = closed or await _closed_within(reader, 2.0)
        assert closed and time.monotonic() - started < 4.0
        writer.close()
    finally:
        await close()


async def test_a_client_sending_half_a_body_is_disconnected_after_body_timeout(
    pki_dir: Path, server_config, tmp_path: Path
):
    h, close = await _timed_server(pki_dir, server_config, tmp_path)
    try:
        reader, writer = await _tls_stream(pki_dir, h.base)
        writer.write(
            f"POST {ROOT} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nContent-Length: 1000\r\n\r\n{{".encode()
        )
        await writer.drain()
        started = time.monotonic()
        assert await _closed_within(reader, 3.0)
        assert time.monotonic() - started < 3.0
        writer.close()
    finally:
        await close()


async def test_an_idle_kept_alive_connection_is_closed_but_a_normal_client_is_unaffected(
    pki_dir: Path, server_config, tmp_path: Path
):
    h, close = await _timed_server(pki_dir, server_config, tmp_path)
    try:
        await register(h.client)  # the harness's aiohttp client: normal requests work with short timeouts
        for _ in range(3):
            reply = await h.client.request("GET", f"{ROOT}/dots-client={h.client.cuid}")
            assert reply.status == 200
            await asyncio.sleep(0.2)
        reader, writer = await _tls_stream(pki_dir, h.base)
        writer.write(f"GET {ROOT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        assert await _closed_within(reader, 3.0)  # then nothing more within keepalive_timeout: closed
        writer.close()
    finally:
        await close()
