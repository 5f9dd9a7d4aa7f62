"""A request for blocks of the Q-Block2 answer to a PUT, POST or FETCH carries no body (RFC 9177 §4.4, Figure 15):
when that answer is no longer kept, the server must not render the request without its body (a PUT would store
nothing in place of the resource); it answers 4.08 so the client sends the request again. A GET is rendered again."""

from __future__ import annotations

import aiocoap
import pytest

from opendots.transport.qblock import BlockOption
from tests.helpers.qblock_server import SZX, get, served


@pytest.mark.parametrize("method", [aiocoap.PUT, aiocoap.POST, aiocoap.FETCH])
def test_blocks_asked_of_an_answer_no_longer_kept_get_4_08_and_the_bodiless_request_is_not_rendered(method) -> None:
    server, _, _ = served()
    request = get(b"r1", BlockOption(2, False, SZX), BlockOption(5, False, SZX))
    request.code = method
    goes_up, answers = server.on_request(request)
    assert not goes_up
    assert [answer.code for answer in answers] == [aiocoap.REQUEST_ENTITY_INCOMPLETE]
    assert b"no longer kept" in answers[0].payload


def test_a_get_for_blocks_of_a_body_no_longer_kept_is_rendered_again() -> None:
    server, _, _ = served()
    goes_up, answers = server.on_request(get(b"r2", BlockOption(2, False, SZX)))
    assert goes_up and answers == []
