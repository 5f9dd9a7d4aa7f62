"""While a signal server runs, the oldest garbage-collector generation is collected on a timer only
(opendots.signal.server.shell.collection): a running server turns CPython's own full collections off, runs one every
`full_collection_interval` seconds, reclaims cyclic garbage that way, exports what it did, and gives CPython its
thresholds back when the last server in the process stops."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from opendots.config import ConfigError, ServerConfig
from opendots.metrics import SignalCollector, start_metrics_endpoint
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.helpers.metrics import scrape


def server_config(pki_dir: Path, tmp_path: Path, name: str, interval: float) -> ServerConfig:
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / f"{name}.db"
    config.full_collection_interval = interval
    return config


class _Cycle:
    def __init__(self) -> None:
        self.me = self


class CollectionsSeen:
    """The generation of every collection CPython starts while in the `with` block."""

    def __init__(self) -> None:
        self.generations: list[int] = []

    def __enter__(self) -> CollectionsSeen:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.generations.append(info["generation"])


async def test_a_running_server_collects_the_oldest_generation_on_its_timer_only(pki_dir: Path, tmp_path: Path):
    default = gc.get_threshold()
    running = await start_signal_server(server_config(pki_dir, tmp_path, "a", 0.2), bind=[("127.0.0.1", free_port())])
    try:
        young, middle, oldest = gc.get_threshold()
        assert (young, middle) == default[:2] and oldest >= 2**30
        with CollectionsSeen() as seen:
            churn = [[object() for _ in range(50)] for _ in range(20_000)]  # a million allocations
            del churn
        assert 0 in seen.generations, "no young collection ran: the test proves nothing"
        assert 2 not in seen.generations, "CPython started a full collection itself"

        cycle = _Cycle()
        gc.collect(1)  # it survives into the oldest generation, which only a full collection looks at
        dead = weakref.ref(cycle)
        del cycle
        gc.collect(1)
        assert dead() is not None, "a young collection reclaimed it: the test proves nothing"
        with CollectionsSeen() as seen:
            for _ in range(60):
                await asyncio.sleep(0.05)
                if dead() is None:
                    break
        assert dead() is None, "the timer's full collection did not reclaim the cycle"
        assert 2 in seen.generations
        assert running.full_collections is not None and running.full_collections.count >= 1
    finally:
        await running.stop()
    assert gc.get_threshold() == default


async def test_the_thresholds_come_back_only_when_the_last_server_stops(pki_dir: Path, tmp_path: Path):
    default = gc.get_threshold()
    first = await start_signal_server(server_config(pki_dir, tmp_path, "a", 30), bind=[("127.0.0.1", free_port())])
    second = await start_signal_server(server_config(pki_dir, tmp_path, "b", 30), bind=[("127.0.0.1", free_port())])
    await first.stop()
    assert gc.get_threshold()[2] >= 2**30, "one server still runs: its policy must hold"
    await second.stop()
    assert gc.get_threshold() == default


async def test_interval_zero_leaves_cpython_its_own_policy(pki_dir: Path, tmp_path: Path):
    default = gc.get_threshold()
    running = await start_signal_server(server_config(pki_dir, tmp_path, "a", 0), bind=[("127.0.0.1", free_port())])
    try:
        assert gc.get_threshold() == default and running.full_collections is None
    finally:
        await running.stop()


async def test_the_timer_is_exported_to_prometheus(pki_dir: Path, tmp_path: Path):
    running = await start_signal_server(server_config(pki_dir, tmp_path, "a", 0.05), bind=[("127.0.0.1", free_port())])
    exporter = await start_metrics_endpoint([SignalCollector(running)], f"127.0.0.1:{free_port()}")
    try:
        while running.full_collections is not None and running.full_collections.count < 2:
            await asyncio.sleep(0.05)
        samples = await scrape(exporter.addresses[0])
        assert samples[("opendots_full_gc_collections_total", ())] >= 2
        assert samples[("opendots_full_gc_seconds_total", ())] > 0
        assert 0 < samples[("opendots_full_gc_last_seconds", ())] < 5
        assert samples[("opendots_full_gc_whole_walks_total", ())] == running.full_collections.whole_walks
        assert samples[("opendots_gc_frozen_objects", ())] > 1000  # the server's start-up state at least
    finally:
        await exporter.stop()
        await running.stop()


@pytest.mark.parametrize("value", ['"60"', "-1", "true", "nan", "inf"])
def test_a_bad_interval_is_refused_with_its_key(tmp_path: Path, pki_dir: Path, value: str):
    text = (pki_dir / "server.toml").read_text()
    assert "full_collection_interval = 10.0" in text  # `opendots certs init` writes the default
    (tmp_path / "server.toml").write_text(
        text.replace("full_collection_interval = 10.0", f"full_collection_interval = {value}")
    )
    with pytest.raises(ConfigError, match="full_collection_interval"):
        ServerConfig.load(tmp_path / "server.toml")


def test_the_interval_survives_a_save_and_load(tmp_path: Path, pki_dir: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    assert config.full_collection_interval == 10.0
    config.full_collection_interval = 12.5
    config.save(tmp_path / "server.toml")
    assert ServerConfig.load(tmp_path / "server.toml").full_collection_interval == 12.5
