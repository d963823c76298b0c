import asyncio

import pytest

from stepgraph.models import Request, ScriptedBackend


def test_replies_in_order_then_from_responder():
    backend = ScriptedBackend(["a", "b"], responder=lambda r: r.messages[-1].content.upper())
    out = backend.generate([Request.chat("x"), Request.chat("y"), Request.chat("zed")])
    assert [c.text for c in out] == ["a", "b", "ZED"]
    assert [r.messages[-1].content for r in backend.requests] == ["x", "y", "zed"]


def test_runs_out_loudly():
    with pytest.raises(AssertionError, match="ran out"):
        ScriptedBackend([]).complete(Request.chat("hello"))


def test_async_twins_and_stream():
    backend = ScriptedBackend(["streamed text here"])

    async def collect():
        return "".join([piece async for piece in backend.astream(Request.chat("q"))])

    assert asyncio.run(collect()) == "streamed text here"
    backend = ScriptedBackend(["one"])
    assert asyncio.run(backend.acomplete(Request.chat("q"))).text == "one"
