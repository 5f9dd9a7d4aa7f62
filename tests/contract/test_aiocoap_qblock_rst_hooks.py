"""Contract tests for the aiocoap private names the Q-Block RST handling relies on (opendots.transport.aiocoap_hooks:
`_drop_backlogged`, `TimerlessDedupMessageManager._remove_exchange` and `_process_response`). If one fails after an
aiocoap upgrade, adapt those helpers (written against aiocoap 0.4.17), then this test."""

from __future__ import annotations

import inspect

from aiocoap.messagemanager import MessageManager


def _explain(name: str, helper: str) -> str:
    return f"aiocoap changed `{name}`, which opendots.transport.aiocoap_hooks.{helper} relies on."


def test_cons_held_back_by_nstart_wait_in_backlogs_as_message_monitor_pairs_worked_off_in_place():
    send = inspect.getsource(MessageManager.send_message)
    assert "self._backlogs[message.remote].append((message, messageerror_monitor))" in send, _explain(
        "MessageManager._backlogs (remote -> [(message, monitor)])", "_drop_backlogged"
    )
    backlog = inspect.getsource(MessageManager._continue_backlog)
    assert "self._backlogs[remote].pop(0)" in backlog and "del self._backlogs[remote]" in backlog, _explain(
        "MessageManager._continue_backlog", "_drop_backlogged"
    )


def test_an_rst_reaches_remove_exchange_which_calls_the_monitor_before_the_backlog_goes_on():
    dispatch = inspect.getsource(MessageManager.dispatch_message)
    assert "if message.mtype in (ACK, RST):\n            self._remove_exchange(message)" in dispatch, _explain(
        "MessageManager.dispatch_message calling _remove_exchange for ACK and RST", "_remove_exchange"
    )
    remove = inspect.getsource(MessageManager._remove_exchange)
    assert "key = (message.remote, message.mid)" in remove and "self._active_exchanges.pop(key)" in remove
    assert remove.index("messageerror_monitor()") < remove.index("self._continue_backlog(message.remote)"), _explain(
        "MessageManager._remove_exchange: monitor, then _continue_backlog", "_drop_backlogged"
    )


def test_an_unknown_non_response_is_left_to_process_responses_answer_and_ignored():
    dispatch = inspect.getsource(MessageManager.dispatch_message)
    assert "success = self._process_response(message)" in dispatch, _explain(
        "MessageManager.dispatch_message calling _process_response", "TimerlessDedupMessageManager._process_response"
    )
    assert "self._send_initially(rst)" in dispatch, _explain(
        "MessageManager._send_initially sending an RST", "TimerlessDedupMessageManager._process_response"
    )
