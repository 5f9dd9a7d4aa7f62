"""Contract tests for the non-public aiocoap names in opendots.transport.aiocoap_hooks.

If one of these fails after an aiocoap upgrade, read the message: it names the private API that moved and the
helper in opendots/transport/aiocoap_hooks/ that must be adapted. Do not patch around it elsewhere.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import aiocoap
import aiocoap.resource as resource
import pytest
from aiocoap.messagemanager import MessageManager
from aiocoap.pipe import Pipe
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.rfc8323common import RFC8323Remote
from aiocoap.transports.tcp import TcpConnection, TCPServer
from aiocoap.transports.tls import TLSClient, TLSServer

from opendots.config import TlsFiles
from opendots.transport import aiocoap_hooks as hooks
from opendots.transport import create_client_context, peer_identity, ping, start_server
from tests.conftest import free_port

PINNED = "0.4.17"


def _explain(name: str, helper: str) -> str:
    return (
        f"aiocoap {aiocoap.meta.version} changed `{name}`, which opendots.transport.aiocoap_hooks.{helper} relies on "
        f"(written against aiocoap {PINNED}). Adapt that helper, then this test."
    )


def test_aiocoap_is_the_pinned_version():
    assert aiocoap.meta.version == PINNED, (
        f"aiocoap {aiocoap.meta.version} is installed but the private hooks were verified against {PINNED}; "
        "run tests/contract and review opendots/transport/aiocoap_hooks/ before moving the pin"
    )


def test_context_can_append_a_message_managed_transport():
    """append_message_interface repeats aiocoap's own wiring of a UDP/DTLS stack, with our MessageManager."""
    method = getattr(aiocoap.Context, "_append_tokenmanaged_messagemanaged_transport", None)
    assert method is not None, _explain(
        "Context._append_tokenmanaged_messagemanaged_transport", "append_message_interface"
    )
    source = inspect.getsource(method)
    for line in (
        "tman = TokenManager(self)",
        "mman = MessageManager(tman)",
        "transport = await message_interface_constructor(mman)",
        "mman.message_interface = transport",
        "tman.token_interface = mman",
        "self.request_interfaces.append(tman)",
    ):
        assert line in source, _explain(
            f"Context._append_tokenmanaged_messagemanaged_transport ({line})", "append_message_interface"
        )
    assert list(inspect.signature(TokenManager.__init__).parameters) == ["self", "context"], _explain(
        "TokenManager(context)", "append_message_interface"
    )


def test_duplicate_detection_goes_through_the_two_overridden_methods():
    """TimerlessDedupMessageManager replaces the only two users of `_recent_messages`; every request passes the
    first, every message sent the second."""
    for name in ("_deduplicate_message", "_store_response_for_duplicates"):
        assert list(inspect.signature(getattr(MessageManager, name)).parameters) == ["self", "message"], _explain(
            f"MessageManager.{name}(message)", "TimerlessDedupMessageManager"
        )
    assert "self._deduplicate_message(message)" in inspect.getsource(MessageManager.dispatch_message), _explain(
        "MessageManager.dispatch_message calling _deduplicate_message", "TimerlessDedupMessageManager"
    )
    assert "self._store_response_for_duplicates(message)" in inspect.getsource(MessageManager._send_initially), (
        _explain(
            "MessageManager._send_initially calling _store_response_for_duplicates", "TimerlessDedupMessageManager"
        )
    )
    users = [
        name
        for name, member in inspect.getmembers(MessageManager, inspect.isfunction)
        if "_recent_messages" in inspect.getsource(member)
    ]
    assert sorted(users) == ["__init__", "_deduplicate_message", "_store_response_for_duplicates"], _explain(
        f"the users of MessageManager._recent_messages ({users})", "TimerlessDedupMessageManager"
    )


def test_context_can_append_a_token_managed_transport():
    method = getattr(aiocoap.Context, "_append_tokenmanaged_transport", None)
    assert method is not None, _explain("Context._append_tokenmanaged_transport", "append_tls_server/client")
    assert list(inspect.signature(method).parameters) == ["self", "token_interface_constructor"], _explain(
        "Context._append_tokenmanaged_transport(constructor)", "append_tls_server/client"
    )


def test_context_keeps_request_interfaces_and_find_remote():
    context = aiocoap.Context(loop=asyncio.new_event_loop())
    try:
        assert isinstance(getattr(context, "request_interfaces", None), list), _explain(
            "Context.request_interfaces", "find_message_manager/has_transports"
        )
        assert inspect.iscoroutinefunction(getattr(aiocoap.Context, "find_remote_and_interface", None)), _explain(
            "Context.find_remote_and_interface", "find_request_interface"
        )
    finally:
        context.loop.close()


def test_incoming_requests_are_rendered_through_context_render_to_pipe():
    """PromptAnswerContext overrides Context.render_to_pipe: the TokenManager must still hand every request to it."""
    assert "self.context.render_to_pipe(pipe)" in inspect.getsource(TokenManager.process_request), _explain(
        "TokenManager.process_request calling Context.render_to_pipe", "PromptAnswerContext"
    )
    assert list(inspect.signature(aiocoap.Context.render_to_pipe).parameters) == ["self", "pipe"], _explain(
        "Context.render_to_pipe(pipe)", "PromptAnswerContext"
    )


def test_the_acyclic_token_manager_keeps_the_incoming_request_table_aiocoap_reads():
    """AcyclicTokenManager replaces TokenManager.process_request: its (pipe, stop) entries must be what aiocoap's
    dispatch_error and shutdown read, and a Pipe must still unregister a handler by identity."""
    source = inspect.getsource(TokenManager.process_request)
    for line in ("self.incoming_requests[key] = (pipe, stop)", "stop = pipe.on_event(on_event)", "m.request = request"):
        assert line in source, _explain(f"TokenManager.process_request ({line})", "AcyclicTokenManager")
    assert "(_, stop) = self.incoming_requests.pop(key)" in inspect.getsource(TokenManager.shutdown), _explain(
        "TokenManager.shutdown reading incoming_requests", "AcyclicTokenManager"
    )
    assert "(_, stopper) in self.incoming_requests.items()" in inspect.getsource(TokenManager.dispatch_error), _explain(
        "TokenManager.dispatch_error reading incoming_requests", "AcyclicTokenManager"
    )
    assert list(inspect.signature(Pipe._unregister_on_event).parameters) == ["self", "callback"], _explain(
        "Pipe._unregister_on_event(callback)", "_IncomingRequest.stop"
    )
    assert "callback is not cb" in inspect.getsource(Pipe._unregister_on_event), _explain(
        "Pipe._unregister_on_event comparing handlers by identity", "_IncomingRequest"
    )


def test_a_single_response_is_all_the_token_manager_asks_of_a_pipe_for_an_outgoing_request():
    """SingleResponse stands in for the Pipe of an outgoing request: the TokenManager may only use what it has."""
    calls = {
        TokenManager.request: ("msg = request.request", "request.on_interest_end(", "request.add_exception("),
        TokenManager.process_response: ("request.request.opt.observe", "request.add_response(response, is_last="),
        TokenManager.dispatch_error: ("request.add_exception(",),
        TokenManager.shutdown: ("request.add_exception(error.LibraryShutdown())",),
    }
    for method, lines in calls.items():
        source = inspect.getsource(method)
        for line in lines:
            assert line in source, _explain(f"TokenManager.{method.__name__} ({line})", "SingleResponse")
    used = {name for method in calls for name in re.findall(r"\brequest\.(\w+)", inspect.getsource(method))}
    assert used <= {"request", "on_interest_end", "add_exception", "add_response", "on_event"}, _explain(
        f"TokenManager using {sorted(used)} of a request's Pipe", "SingleResponse"
    )


def test_token_and_message_manager_wiring():
    assert "token_interface" in inspect.getsource(TokenManager), _explain(
        "TokenManager.token_interface", "find_message_manager"
    )
    assert "message_interface" in inspect.getsource(MessageManager), _explain(
        "MessageManager.message_interface", "find_message_manager"
    )
    parameters = list(inspect.signature(MessageManager.send_message).parameters)
    assert parameters == ["self", "message", "messageerror_monitor"], _explain(
        "MessageManager.send_message(message, messageerror_monitor)", "send_empty_con"
    )
    # The RST answering a ping reaches us only through the exchange monitor, called from _remove_exchange.
    assert "messageerror_monitor()" in inspect.getsource(MessageManager._remove_exchange), _explain(
        "MessageManager._remove_exchange calling the monitor on RST", "send_empty_con"
    )


def test_tls_transport_internals():
    assert issubclass(TLSServer, TCPServer), _explain("TLSServer(TCPServer)", "append_tls_server")
    server = TLSServer()
    assert hasattr(server, "_pool") and isinstance(server._pool, set), _explain("TCPServer._pool", "append_tls_server")
    assert "server" in vars(server), _explain("TCPServer.server", "tls_server_sockets")
    connection_params = list(inspect.signature(TcpConnection.__init__).parameters)
    assert connection_params == ["self", "ctx", "log", "loop", "is_server"], _explain(
        "TcpConnection(ctx, log, loop, *, is_server)", "append_tls_server"
    )
    assert "self._ctx = ctx" in inspect.getsource(TcpConnection.__init__), _explain(
        "TcpConnection._ctx", "_TlsServerConnection"
    )
    assert "self._transport = transport" in inspect.getsource(TcpConnection.connection_made), _explain(
        "TcpConnection._transport", "tls_peer_certificate_der"
    )
    assert hasattr(TLSClient, "_ssl_context_factory"), _explain(
        "TLSClient._ssl_context_factory", "_FixedCertificateTLSClient"
    )
    assert "_ssl_context_factory(" in inspect.getsource(TLSClient._spawn_protocol), _explain(
        "TCPClient._spawn_protocol calling _ssl_context_factory", "_FixedCertificateTLSClient"
    )
    assert hasattr(RFC8323Remote, "_send_message") or "_send_message" in inspect.getsource(TcpConnection), _explain(
        "RFC8323Remote._send_message", "send_tls_ping"
    )
    assert "def _process_signaling" in inspect.getsource(RFC8323Remote), _explain(
        "RFC8323Remote._process_signaling", "send_tls_ping"
    )


def test_tls_connections_decode_whole_frames_the_way_the_frame_checks_assume():
    """_TlsServerConnection.data_received hands aiocoap one checked frame at a time and dispatches refusals itself."""
    source = inspect.getsource(TcpConnection.data_received)
    for line in (
        "self._spool += data",  # partial input is kept by aiocoap too, so whole frames pass through unchanged
        "if msglen > self._my_max_message_size:",
        "if self._remote_settings is None:",
        "self._ctx._dispatch_incoming(self, msg)",
    ):
        assert line in source, _explain(f"TcpConnection.data_received ({line})", "_TlsServerConnection.data_received")
    assert "self._my_max_message_size" in inspect.getsource(RFC8323Remote), _explain(
        "RFC8323Remote._my_max_message_size", "_TlsServerConnection.data_received"
    )
    assert callable(getattr(TcpConnection, "abort", None)), _explain(
        "TcpConnection.abort", "_TlsServerConnection.data_received"
    )
    dispatch = getattr(TCPServer, "_dispatch_incoming", None)
    assert dispatch is not None and "process_request(msg)" in inspect.getsource(dispatch), _explain(
        "TCPServer._dispatch_incoming", "_TlsServerConnection.data_received"
    )


def test_no_response_on_a_response_makes_an_empty_ack_or_nothing():
    """DotsResource marks a silently ignored request's answer No-Response (RFC 7967) for every class; aiocoap's
    MessageManager must turn it into a bare ACK for a CON and drop it for a NON (public behaviour, checked here
    because RFC 9132 §4.4.3 depends on it)."""
    source = inspect.getsource(MessageManager.send_message)
    for line in (
        "no_response = (message.opt.no_response or 0) & (",
        "new_message = Message(code=EMPTY, mid=mid, mtype=ACK)",
    ):
        assert line in source, _explain(f"MessageManager.send_message ({line})", "(DotsResource._answer)")


# ---- behaviour: the hooks really work end to end with this aiocoap


def _files(directory: Path, stem: str) -> TlsFiles:
    return TlsFiles(directory / "ca.crt", directory / f"{stem}.crt", directory / f"{stem}.key")


class _Echo(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        identity = peer_identity(request)
        return aiocoap.Message(payload=(identity.common_name or "").encode() if identity else b"none")


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_hooks_carry_requests_identity_and_pings(pki_dir, scheme):
    site = resource.Site()
    site.add_resource(["echo"], _Echo())
    port = free_port()
    server = await start_server(site, credentials=_files(pki_dir, "server"), bind=[("127.0.0.1", port)])
    client = await create_client_context(_files(pki_dir, "client"), server_name="localhost")
    try:
        response = await asyncio.wait_for(
            client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{scheme}://127.0.0.1:{port}/echo")).response, 10
        )
        assert response.payload == b"client", _explain("transport plumbing", "append_* / peer identity")
        assert await ping(client, f"{scheme}://127.0.0.1:{port}") > 0, _explain(
            "ping path", "send_empty_con/send_tls_ping"
        )
        if scheme == "coaps+tcp":
            assert [s.getsockname()[1] for s in hooks.tls_server_sockets(server.tls_servers[0])] == [port], _explain(
                "TCPServer.server sockets / exact port binding", "append_tls_server"
            )
    finally:
        await client.shutdown()
        await server.shutdown()


def test_options_keep_the_numbers_they_carry_in_a_dict():
    """PromptAnswerContext.render_to_pipe reads `Options._options` (option number -> values) to find critical
    options the server does not understand (opendots.transport.coap_checks.refusal_for)."""
    message = aiocoap.Message(code=aiocoap.GET, uri_path=["a"], uri_query=["b"])
    message.opt.add_option(aiocoap.optiontypes.OpaqueOption(2049, b"x"))
    assert isinstance(getattr(message.opt, "_options", None), dict), _explain("Options._options", "PromptAnswerContext")
    assert set(message.opt._options) == {11, 15, 2049}, _explain("Options._options", "PromptAnswerContext")
    message.mtype, message.mid = aiocoap.CON, 1
    decoded = aiocoap.Message.decode(message.encode())
    assert set(decoded.opt._options) == {11, 15, 2049}, _explain("Options._options", "PromptAnswerContext")


def test_q_block_hooks_see_every_request_and_response_of_the_message_layer():
    """TimerlessDedupMessageManager hands requests to its QBlockServer in `_process_request` (what dispatch_message
    calls for every CON/NON request) and responses in `send_message`; it ACKs taken blocks with `_send_empty_ack`,
    piggybacks a refusal with `_send_initially`, and the first block of an answer keeps `Message.request`, from
    which send_message picks NON for a NON request."""
    helper = "TimerlessDedupMessageManager (Q-Block)"
    assert "self._process_request(message)" in inspect.getsource(MessageManager.dispatch_message), _explain(
        "MessageManager.dispatch_message calling _process_request", helper
    )
    assert "self.token_manager.process_request(request)" in inspect.getsource(MessageManager._process_request), (
        _explain("MessageManager._process_request handing requests to the token manager", helper)
    )
    assert list(inspect.signature(MessageManager._send_empty_ack).parameters) == ["self", "remote", "mid", "reason"], (
        _explain("MessageManager._send_empty_ack(remote, mid, reason)", helper)
    )
    assert list(inspect.signature(MessageManager._send_initially).parameters)[:2] == ["self", "message"], _explain(
        "MessageManager._send_initially(message, ...)", helper
    )
    assert "message.request.mtype is NON" in inspect.getsource(MessageManager.send_message), _explain(
        "MessageManager.send_message choosing NON from Message.request", helper
    )


def test_q_block_client_hooks_see_every_request_sent_and_response_received():
    """TimerlessDedupMessageManager hands the requests the token manager sends (through `send_message`) and every
    response (`_process_response`, what dispatch_message calls for responses, returning whether it was expected) to
    its QBlockClient, which ends a failed transfer's request through `TokenManager.outgoing_requests`."""
    helper = "TimerlessDedupMessageManager and _fail_request (Q-Block client)"
    assert "success = self._process_response(message)" in inspect.getsource(MessageManager.dispatch_message), _explain(
        "MessageManager.dispatch_message calling _process_response", helper
    )
    assert list(inspect.signature(MessageManager._process_response).parameters) == ["self", "response"], _explain(
        "MessageManager._process_response(response)", helper
    )
    assert "self.token_manager.process_response(response)" in inspect.getsource(MessageManager._process_response), (
        _explain("MessageManager._process_response handing responses to the token manager", helper)
    )
    source = inspect.getsource(TokenManager.request)
    assert "self.outgoing_requests[key] = request" in source and "key = (msg.token, msg.remote)" in source, _explain(
        "TokenManager.outgoing_requests keyed by (token, remote)", helper
    )
    assert "self.token_interface.send_message(" in source, _explain(
        "TokenManager.request sending through token_interface.send_message", helper
    )


def test_the_lean_path_shares_the_message_id_counter_and_sees_the_incoming_request_table():
    """aiocoap_hooks.lean numbers its NON answers with `MessageManager._next_message_id` (the counter aiocoap numbers
    every message it sends with) and leaves a request on a token aiocoap still serves to aiocoap
    (`TokenManager.incoming_requests`, keyed (token, remote))."""
    assert list(inspect.signature(MessageManager._next_message_id).parameters) == ["self"], _explain(
        "MessageManager._next_message_id()", "lean.LeanPath"
    )
    assert "message.mid = self._next_message_id()" in inspect.getsource(MessageManager.send_message), _explain(
        "MessageManager.send_message numbering with _next_message_id", "lean.LeanPath"
    )
    assert "key = (request.token, request.remote)" in inspect.getsource(TokenManager.process_request), _explain(
        "TokenManager.incoming_requests keyed (token, remote)", "lean.LeanPath"
    )
