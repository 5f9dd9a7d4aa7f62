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
