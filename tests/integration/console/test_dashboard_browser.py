"""The operator console in a real headless Chromium: log-in, live mitigations over server-sent events, the
report-status action (RFC 9132 §4.4.2: the server reports the status of a mitigation it runs), refusal of a wrong
token. Screenshots are saved in each test's tmp dir."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import aiohttp

from opendots.console.events import MIN_INTERVAL
from tests.helpers.console import log_in, row_status, severe_console_messages, url_of, wait_for
from tests.integration.console.conftest import TOKEN

REPOSITORY = Path(__file__).resolve().parents[3]


async def test_a_wrong_token_is_refused_and_shows_no_state(console_server, browser, tmp_path: Path):
    running, _ = console_server
    url = url_of(running)
    cuid = running.config.clients[0].cuid
    await log_in(browser, url, "not-the-token-at-all")
    refused = "const p = document.getElementById('refused'); return p && p.textContent"
    assert await wait_for(browser, refused, 10) == "That token is not valid."
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "wrong-token.png"))
    assert cuid not in await asyncio.to_thread(lambda: browser.page_source)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/login")
        refusals = ({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Cookie": "opendots_console=x"}, 403)
        for headers, expected in refusals:
            for path in ("/state", "/events") if expected == 401 else ("/", "/state", "/events"):
                async with http.get(url + path, headers=headers, allow_redirects=False) as response:
                    assert response.status == expected, (path, headers)
                    assert cuid not in await response.text()
        async with http.post(
            url + "/action/report-status", json={"cuid": cuid, "mid": 1, "status": "attack-stopped"}
        ) as response:
            assert response.status == 401
        async with http.get(url + "/state", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200
            assert [c["cuid"] for c in (await response.json())["clients"]] == [cuid]


async def test_a_mitigation_a_client_requests_appears_with_its_status_within_two_seconds(
    console_server, signal_client, browser, tmp_path: Path
):
    running, _ = console_server
    url = url_of(running)
    await log_in(browser, url, TOKEN)
    await wait_for(browser, "return document.getElementById('live').textContent === 'live'", 10)
    await signal_client.request_mitigation(1, "203.0.113.0/28")
    status = await wait_for(browser, row_status(signal_client.cuid, 1), 2.0)
    assert status == "attack-mitigation-in-progress"
    row = await asyncio.to_thread(
        browser.execute_script,
        f"return [...document.querySelector('#mitigations tr[data-key=\"{signal_client.cuid}/1\"]').children]"
        ".map(td => td.textContent)",
    )
    assert row[0] == "client" and row[3] == "203.0.113.0/28"
    assert row[5:7] == ["-", "-"]  # the logging mitigator measures nothing: no counter is invented
    assert row[7] == "-"  # no rate without two measurements
    assert row[8] == "not enforced"  # no [[mitigators]]: only the logging mitigator runs
    clients = await asyncio.to_thread(
        browser.execute_script, "return [...document.querySelectorAll('#clients td')].map(td => td.textContent)"
    )
    assert clients[:3] == ["client", signal_client.cuid, "DTLS"] and clients[3].startswith("127.0.0.1:")
    assert clients[4] == "alive"
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "mitigation-shown.png"))
    # How long from a PUT to its row in the page, as the browser sees it (recorded, not asserted: README figure).
    # Tries spaced by the broadcaster's MIN_INTERVAL: back to back, each would wait for the previous snapshot's slot.
    delays = []
    for mid in range(2, 22):
        await asyncio.sleep(MIN_INTERVAL)
        started = time.time()
        await signal_client.request_mitigation(mid, f"198.51.100.{mid}/32")
        row_shown = f"return document.querySelector('#mitigations tr[data-key=\"{signal_client.cuid}/{mid}\"]')"
        shown_at = await wait_for(browser, row_shown + " ? Date.now() : 0", 5.0)
        delays.append(shown_at / 1000 - started)
    (tmp_path / "put-to-page.json").write_text(json.dumps({"p50": statistics.median(delays), "delays": delays}))
    print(f"PUT to row in page: p50 {statistics.median(delays) * 1000:.0f} ms over {len(delays)}")
    assert severe_console_messages(browser) == []
    # An open page does not hold the server's shutdown (aiohttp would wait up to 60 s for its stream), and the
    # page says it lost the server.
    console, running.console = running.console, None
    await asyncio.wait_for(console.stop(), 10)
    assert await wait_for(browser, "return document.getElementById('live').textContent === 'reconnecting…'", 10)


async def test_an_operator_reports_a_status_from_the_page_and_it_is_audited(
    console_server, signal_client, browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    running, _ = console_server
    url = url_of(running)
    await signal_client.request_mitigation(7, "203.0.113.16/28")
    await log_in(browser, url, TOKEN)
    await wait_for(browser, "return document.getElementById('live').textContent === 'live'", 10)
    assert await wait_for(browser, row_status(signal_client.cuid, 7), 5.0) == "attack-mitigation-in-progress"

    def report() -> None:
        row = browser.find_element(By.CSS_SELECTOR, f'#mitigations tr[data-key="{signal_client.cuid}/7"]')
        Select(row.find_element(By.CSS_SELECTOR, "select.report-status")).select_by_visible_text(
            "attack-successfully-mitigated"
        )
        row.find_element(By.CSS_SELECTOR, "button.report").click()
        alert = browser.switch_to.alert
        assert "attack-successfully-mitigated" in alert.text
        alert.accept()

    await asyncio.to_thread(report)
    reported = row_status(signal_client.cuid, 7).replace(
        "return tr ? tr.children[2].textContent : null;",
        "return tr && tr.children[2].textContent === 'attack-successfully-mitigated';",
    )
    shown = await wait_for(browser, reported, 5.0)
    assert shown is True
    audit = await wait_for(browser, "const li = document.querySelector('#audit li'); return li && li.textContent", 5.0)
    assert (
        f"(console): mitigation status {signal_client.cuid}/7: attack-mitigation-in-progress → "
        "attack-successfully-mitigated" in audit
    )
    notice = await asyncio.to_thread(lambda: browser.find_element(By.ID, "notice").text)
    assert notice == "Reported attack-successfully-mitigated"
    # The server's state changed, not only the page: the admin socket's handler reads it.
    listed = await running.console.console.admin("mitigations", {})
    assert [m["status"] for m in listed["mitigations"] if m["mid"] == 7] == ["attack-successfully-mitigated"]
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "status-reported.png"))
    if os.environ.get("OPENDOTS_DOCS_SCREENSHOT"):  # refresh the README's picture: OPENDOTS_DOCS_SCREENSHOT=1
        await asyncio.to_thread(browser.set_window_size, 1400, 560)
        await asyncio.to_thread(browser.save_screenshot, str(REPOSITORY / "docs" / "dashboard.png"))
    assert severe_console_messages(browser) == []
