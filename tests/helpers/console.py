"""Driving the operator console in a real headless Chromium (Selenium): log in, poll the page, read its rows."""

from __future__ import annotations

import asyncio


def url_of(running) -> str:
    host, port = running.console.addresses[0][:2]
    return f"http://{host}:{port}"


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


async def log_in(driver, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    def steps() -> None:
        driver.get(url + "/")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()

    await asyncio.to_thread(steps)


async def wait_for(driver, script: str, timeout: float) -> object:
    """Poll SCRIPT in the page until it returns something truthy (the event loop keeps serving meanwhile)."""
    from selenium.common.exceptions import JavascriptException
    from selenium.webdriver.support.ui import WebDriverWait

    # Until the login's redirect has loaded the dashboard, the script may look for elements that are not there yet
    # (a JavaScript error, not an answer): keep polling.
    wait = WebDriverWait(driver, timeout, poll_frequency=0.02, ignored_exceptions=[JavascriptException])
    return await asyncio.to_thread(wait.until, lambda d: d.execute_script(script))


def row_status(cuid: str, mid: int) -> str:
    return (
        f"const tr=document.querySelector('#mitigations tr[data-key=\"{cuid}/{mid}\"]');"
        "return tr ? tr.children[2].textContent : null;"
    )


LIVE = "const live = document.getElementById('live'); return live && live.textContent === 'live'"


async def open_live(driver, running, token: str) -> None:
    """Log in to RUNNING's console and wait until the page receives live updates."""
    await log_in(driver, url_of(running), token)
    await wait_for(driver, LIVE, 10)


async def open_with_mitigation(driver, running, token: str, signal_client, mid: int, prefix: str) -> str:
    """A client's mitigation MID on PREFIX, shown in progress in the live page; its row's key."""
    await signal_client.request_mitigation(mid, prefix)
    await open_live(driver, running, token)
    assert await wait_for(driver, row_status(signal_client.cuid, mid), 5.0) == "attack-mitigation-in-progress"
    return f"{signal_client.cuid}/{mid}"
