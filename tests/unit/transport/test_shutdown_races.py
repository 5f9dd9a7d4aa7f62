"""aiocoap 0.4.17's known shutdown races reach asyncio's unhandled-exception log with a traceback although they change
no outcome (seen at an agent's stop under loss): the agent's loop logs them at debug level, and nothing else."""

from __future__ import annotations

import asyncio
import logging

from opendots.transport.aiocoap_hooks import quiet_shutdown_races


def test_a_cancelled_observation_race_is_debug_and_any_other_error_still_reaches_the_loop_handler(caplog):
    loop = asyncio.new_event_loop()
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        quiet_shutdown_races(loop)
        with caplog.at_level(logging.DEBUG, logger="opendots.transport.aiocoap_hooks"):
            race = RuntimeError("Error raised in an already cancelled ClientObservation")
            loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": race})
            tls = AttributeError("'NoneType' object has no attribute 'process_response'")
            loop.call_exception_handler({"message": "Exception in callback", "exception": tls})
            other = RuntimeError("something else")
            loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": other})
            loop.call_exception_handler({"message": "no exception at all"})
    finally:
        loop.close()
    assert [context.get("exception") for context in seen] == [other, None]  # passed on, unchanged
    assert caplog.text.count("aiocoap shutdown race (harmless)") == 2
