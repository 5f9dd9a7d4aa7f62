"""Operator console benchmark: from a client's PUT to its row in the page, and the server CPU an open page costs.

    .venv/bin/python bench/dashboard.py [--mitigations 1000] [--tries 20] [--window 20]

`opendots server` runs in its own process (DTLS only, no data channel, SQLite in a temporary directory, logging
mitigator, `[dashboard]` on loopback). A DOTS client in this process (aiocoap, our DTLS transport, the test PKI's
client certificate) PUTs mitigations; a real headless Chromium (Debian's chromium and chromium-driver, Selenium)
logs in to the console and stays on the page.

- PUT to page: for each try, the time from just before the client's PUT to the moment the page's script inserts
  the mitigation's row, taken in the browser by a MutationObserver (Date.now(), same host clock): p50 and p99 over
  --tries, on an empty server and again with --mitigations held (the tried mids sort first, so their rows are among
  the 300 the page lists).
- Server CPU: utime+stime of the server process over --window seconds of wall time, with --mitigations held:
  no page open vs one page open, while nothing changes, and while a client refreshes one mitigation twice a second
  (each refresh is a state change the page is sent). Beside each: the load generator's own CPU per refresh (this
  process: the refreshing client) and the browser's share of a core while the page is open, and the load average.

Prints one table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import collections
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import aiocoap

from bench._common import cpu_seconds, files, free_port, generator_note, print_table, tree_cpu_seconds
from opendots.config import DashboardConfig, ServerConfig
from opendots.model import encode_signal
from opendots.pki.setup import init_pki
from opendots.transport import create_client_context

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
TOKEN = "bench-dashboard-token-0123456789"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Records when each mitigation row first appears in the page (the page inserts rows, never re-creates held ones).
OBSERVE_ROWS = """
window.seen = window.seen || {};
new MutationObserver(records => { const now = Date.now();
  for (const r of records) for (const n of r.addedNodes) if (n.dataset && n.dataset.key && !(n.dataset.key in seen))
    seen[n.dataset.key] = now; }).observe(document.getElementById('mitigations'), {childList: true});
return true;
"""


def _tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(directory: Path) -> tuple[subprocess.Popen[str], ServerConfig, str]:
    config, _ = init_pki(directory)
    config.listen = ["127.0.0.1"]
    config.signal_port = free_port()
    (directory / "dashboard.token").write_text(TOKEN + "\n")
    console_port = _tcp_port()
    config.dashboard = DashboardConfig(f"127.0.0.1:{console_port}", directory / "dashboard.token")
    config.signal = {"max_mitigations_per_client": 10_000}  # one client holds them all (1,000 by default)
    config.save(directory / "server.toml")
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "opendots", "server", "-c", str(directory / "server.toml"), "--no-data", "--no-tls"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    if "listening" not in line:
        raise RuntimeError(f"the server did not start: {line}{process.stderr.read()}")
    # Its log (a warning per mitigation from the logging mitigator) must be read, or the pipe fills and stalls it.
    threading.Thread(target=lambda: collections.deque(process.stderr, maxlen=0), daemon=True).start()
    return process, config, f"http://127.0.0.1:{console_port}"


def browser():  # a selenium WebDriver (selenium comes with the [test] extra)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))


def open_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 20, poll_frequency=0.05).until(
        lambda d: d.execute_script("const l = document.getElementById('live'); return l && l.textContent === 'live'")
    )
    driver.execute_script(OBSERVE_ROWS)


class Client:
    def __init__(self, context: aiocoap.Context, port: int, cuid: str) -> None:
        self.context, self.port, self.cuid = context, port, cuid

    async def put(self, mid: int, lifetime: int = 3600) -> None:
        target = f"2001:db8::{mid >> 16:x}:{mid & 0xFFFF:x}/128"  # one address per mid: no two overlap
        body = {SCOPE: {"scope": [{"target-prefix": [target], "lifetime": lifetime}]}}
        message = aiocoap.Message(
            code=aiocoap.PUT,
            uri=f"coaps://127.0.0.1:{self.port}/.well-known/dots/mitigate/cuid={self.cuid}/mid={mid}",
            payload=encode_signal(body),
            content_format=271,
        )
        response = await asyncio.wait_for(self.context.request(message).response, 30)
        if not response.code.is_successful():
            raise RuntimeError(f"PUT mid={mid}: {response.code} {response.payload!r}")


async def put_to_page(client: Client, driver, mids: range) -> list[float]:
    delays = []
    for mid in mids:
        await asyncio.sleep(0.5)  # apart: each try must not wait for the previous snapshot's slot
        started = time.time()
        await client.put(mid)
        key = f"{client.cuid}/{mid}"
        deadline = time.monotonic() + 10
        shown = None
        while shown is None and time.monotonic() < deadline:
            shown = await asyncio.to_thread(driver.execute_script, f"return window.seen['{key}'] || null")
            if shown is None:
                await asyncio.sleep(0.02)
        if shown is None:
            raise RuntimeError(f"mid {mid} never appeared in the page")
        delays.append(shown / 1000 - started)
    return delays


@dataclass
class Share:
    """What one window cost: the server's share of a core, and the load generator's (this process's) CPU."""

    server: float
    generator: float  # CPU seconds of this process (the refreshing client) over the window
    refreshes: int
    elapsed: float
    browser: float | None  # share of a core of the browser (chromedriver and its Chromium), when a page is open

    def note(self) -> str:
        note = f"load average {os.getloadavg()[0]:.1f}"
        if self.refreshes:
            note += "; " + generator_note(self.generator, self.refreshes, self.elapsed, unit="refresh")
        if self.browser is not None:
            note += f"; browser {self.browser * 100:.1f} % of a core"
        return note


async def cpu_share(pid: int, window: float, client: Client | None = None, browser: int | None = None) -> Share:
    """The server's CPU over WINDOW seconds (CLIENT: refresh a mitigation twice a second; BROWSER: the pid of the
    chromedriver whose Chromium shows the page)."""
    start_cpu, start_wall, start_own = cpu_seconds(pid), time.monotonic(), time.process_time()
    start_browser = tree_cpu_seconds(browser) if browser is not None else 0.0
    end = start_wall + window
    refreshes = 0
    while time.monotonic() < end:
        if client is not None:
            await client.put(999_999)
            refreshes += 1
        await asyncio.sleep(0.5 if client is not None else min(1.0, end - time.monotonic()))
    elapsed = time.monotonic() - start_wall
    shown = (tree_cpu_seconds(browser) - start_browser) / elapsed if browser is not None else None
    generator = time.process_time() - start_own
    return Share((cpu_seconds(pid) - start_cpu) / elapsed, generator, refreshes, elapsed, shown)


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {ordered[-1] * 1000:.0f} ms"


async def main(args: argparse.Namespace) -> None:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        sys.exit("needs Debian's chromium and chromium-driver (./run installs them)")
    directory = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    process, config, url = start_server(directory)
    driver = None
    context = await create_client_context(files(directory, "client"), server_name="localhost")
    rows: list[tuple[str, str, str]] = []
    try:
        client = Client(context, config.signal_port, config.clients[0].cuid)
        driver = await asyncio.to_thread(browser)
        await asyncio.to_thread(open_page, driver, url)
        empty = await put_to_page(client, driver, range(1, 1 + args.tries))
        rows.append(("PUT to row in the page, empty server", ms(empty), f"{args.tries} tries, in the browser"))
        base = 100_000  # held mitigations sort after the tried mids: those stay among the 300 rows shown
        for mid in range(base, base + args.mitigations):
            await client.put(mid)
        await client.put(999_999)
        tried = range(1 + args.tries, 1 + 2 * args.tries)
        loaded = await put_to_page(client, driver, tried)
        held = args.mitigations + 2 * args.tries + 1
        rows.append((f"PUT to row in the page, {held} held", ms(loaded), f"{args.tries} tries, in the browser"))
        chromedriver = driver.service.process.pid
        open_idle = await cpu_share(process.pid, args.window, browser=chromedriver)
        open_busy = await cpu_share(process.pid, args.window, client, browser=chromedriver)
        await asyncio.to_thread(driver.quit)
        driver = None
        await asyncio.sleep(3)  # the console's loop stops once no page is subscribed
        closed_idle = await cpu_share(process.pid, args.window)
        closed_busy = await cpu_share(process.pid, args.window, client)
        window = f"{args.window:.0f} s window, {held} mitigations"
        for label, share in (
            ("server CPU, no page open, idle", closed_idle),
            ("server CPU, one page open, idle", open_idle),
            ("server CPU, no page, 2 refreshes/s", closed_busy),
            ("server CPU, one page, 2 refreshes/s", open_busy),
        ):
            rows.append((label, f"{share.server * 100:.1f} % of a core", f"{window}; {share.note()}"))
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        await context.shutdown()
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitigations", type=int, default=1000)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--window", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
