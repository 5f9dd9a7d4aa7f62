"""The console's operator actions in a real headless Chromium, each confirmed in the page and audited (the page's
timeline and the [audit] file): terminating a mitigation (RFC 9132 §4.4.2 status 6), redirecting every client
(§4.6) and reloading the client list. Screenshots are saved in each test's tmp dir."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import aiocoap

from opendots.config import ServerConfig
from opendots.model import decode_signal, encode_signal
from tests.helpers.console import open_live, open_with_mitigation, severe_console_messages, wait_for
from tests.integration.console.conftest import SCOPE, TOKEN

NEWEST_EVENT = "const li = document.querySelector('#audit li'); return li && li.textContent"


def _audit_lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def _click_and_confirm(browser, selector: str, expected_question: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, selector).click()
    alert = browser.switch_to.alert
    assert expected_question in alert.text, alert.text
    alert.accept()


async def test_an_operator_terminates_a_mitigation_from_the_page_and_it_ends_with_status_6(
    console_server, signal_client, browser, tmp_path: Path
):
    running, _ = console_server
    await open_with_mitigation(browser, running, TOKEN, signal_client, 3, "203.0.113.32/28")
    button = f'#mitigations tr[data-key="{signal_client.cuid}/3"] button.terminate'
    await asyncio.to_thread(_click_and_confirm, browser, button, f"Terminate mitigation {signal_client.cuid}/3")
    gone = f"return !document.querySelector('#mitigations tr[data-key=\"{signal_client.cuid}/3\"]')"
    assert await wait_for(browser, gone, 5.0)
    event = await wait_for(browser, NEWEST_EVENT, 5.0)
    assert "operator at 127.0.0.1 (console): mitigation terminated" in str(event)
    assert "attack-mitigation-in-progress → attack-mitigation-terminated" in str(event)
    notice = await asyncio.to_thread(browser.execute_script, "return document.getElementById('notice').textContent")
    assert notice == f"Terminated {signal_client.cuid}/3 (was attack-mitigation-in-progress)"
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "terminated.png"))
    # The server's state, not only the page: gone from the admin socket's view, withdrawn from the mitigator.
    await running.signal.service.idle()
    assert (await running.console.console.admin("mitigations", {}))["mitigations"] == []
    assert running.signal.service.outcomes[("withdraw", "ok")] == 1
    terminated = [e for e in _audit_lines(tmp_path) if e["what"] == "mitigation terminated"]
    assert [(e["who"], e["subject"], e["before"], e["after"]) for e in terminated] == [
        (
            "operator at 127.0.0.1 (console)",
            f"{signal_client.cuid}/3",
            "attack-mitigation-in-progress",
            "attack-mitigation-terminated",
        )
    ]
    requested = [e for e in _audit_lines(tmp_path) if e["what"] == "mitigation requested"]
    assert [(e["who"], e["after"]) for e in requested] == [("client client", "attack-mitigation-in-progress")]
    assert severe_console_messages(browser) == []


async def test_an_operator_redirects_every_client_then_stops_and_reloads_the_client_list(
    console_server, signal_client, browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By

    running, _ = console_server
    await open_live(browser, running, TOKEN)

    def fill() -> None:
        browser.find_element(By.ID, "alt-server").send_keys("dots2.example.net")
        browser.find_element(By.ID, "alt-records").send_keys("192.0.2.10, 2001:db8::10")
        browser.find_element(By.ID, "alt-ttl").send_keys("60")

    await asyncio.to_thread(fill)
    await asyncio.to_thread(_click_and_confirm, browser, "#redirect", "Redirect every client to dots2.example.net")
    shown = "return document.getElementById('redirected').textContent"
    redirected = "dots2.example.net (192.0.2.10, 2001:db8::10) TTL 60 s"
    assert await wait_for(browser, shown + f" === '{redirected}'", 5.0)
    # A client's request now gets 5.03 with the alternate server (RFC 9132 §4.6).
    body = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.48/28"], "lifetime": 60}]}}
    uri = f"coaps://127.0.0.1:{running.config.signal_port}/.well-known/dots/mitigate/cuid={signal_client.cuid}/mid=1"
    message = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=encode_signal(body), content_format=271)
    answer = await asyncio.wait_for(signal_client.context.request(message).response, 15)
    assert answer.code == aiocoap.SERVICE_UNAVAILABLE and answer.opt.max_age == 60
    alternate = decode_signal(answer.payload)["ietf-dots-signal-channel:redirected-signal"]
    assert alternate == {"alt-server": "dots2.example.net", "alt-server-record": ["192.0.2.10", "2001:db8::10"]}
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "redirected.png"))

    await asyncio.to_thread(_click_and_confirm, browser, "#redirect-clear", "Stop redirecting clients?")
    assert await wait_for(browser, shown + " === 'none'", 5.0)
    assert running.signal.service.core.redirection is None

    # A new client in server.toml, adopted by the page's reload without a restart.
    config_path = tmp_path / "server.toml"
    edited = ServerConfig.load(config_path)
    edited.clients.append(replace(edited.clients[0], name="branch-office", cuid="branch-office-cuid"))
    edited.save(config_path)
    await asyncio.to_thread(_click_and_confirm, browser, "#reload", "[[clients]] again?")
    notice = "return document.getElementById('notice').textContent"
    assert await wait_for(
        browser, notice + " === 'Clients reloaded: added branch-office; removed none; changed none'", 5
    )
    names = "return [...document.querySelectorAll('#clients tr')].map(tr => tr.children[0].textContent)"
    assert await wait_for(browser, names + ".includes('branch-office')", 5.0)
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "reloaded.png"))

    audited = [(e["what"], e["who"]) for e in _audit_lines(tmp_path)]
    console = "operator at 127.0.0.1 (console)"
    assert audited == [
        ("redirection set", console),
        ("redirection cleared", console),
        ("clients reloaded", console),
    ]
    reload_entry = _audit_lines(tmp_path)[-1]
    assert reload_entry["before"] == ["client"] and reload_entry["after"] == ["branch-office", "client"]
    assert severe_console_messages(browser) == []


async def test_an_action_the_admin_handler_refuses_is_shown_as_refused_and_not_audited(
    console_server, browser, tmp_path: Path
):
    running, _ = console_server
    await open_live(browser, running, TOKEN)
    # No alternate server named: the admin socket's own check refuses it, and the page says why.
    await asyncio.to_thread(_click_and_confirm, browser, "#redirect", "Redirect every client to ?")
    notice = "return document.getElementById('notice').textContent"
    refused = await wait_for(browser, notice + " .startsWith('Refused') && " + notice.removeprefix("return "), 5.0)
    assert "'alt-server'" in str(refused)
    assert running.signal.service.core.redirection is None
    assert not (tmp_path / "audit.jsonl").exists() or _audit_lines(tmp_path) == []
