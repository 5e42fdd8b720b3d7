"""The stand-in Messages API itself, driven by the real SDK."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest

from tests.agent.conftest import client_for
from tests.fakes import (
    Reply,
    bash_command,
    count_tokens,
    text_turn,
    tool_turn,
)


def ask(client: anthropic.Anthropic, text: str, **params: Any) -> Any:
    with client.messages.stream(
        model="m",
        max_tokens=params.pop("max_tokens", 100),
        messages=[{"role": "user", "content": text}],
        **params,
    ) as stream:
        return stream.get_final_message()


def test_responder_routes_parallel_requests(standin) -> None:
    both_in_flight = threading.Barrier(2, timeout=10)

    def responder(body: dict[str, Any]) -> Reply:
        both_in_flight.wait()  # only passes if the two requests are served concurrently
        phase = "A" if "phase A" in body["messages"][0]["content"] else "B"
        return text_turn(f"answer for {phase}")

    fake = standin(responder=responder)
    client = client_for(fake)
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda t: ask(client, t).content[0].text, ["do phase A", "do phase B"])
        )
    assert answers == ["answer for A", "answer for B"]
    first, second = sorted(fake.requests, key=lambda r: r.started_at)
    assert second.started_at < first.finished_at  # the log shows the overlap


def test_script_stream_and_json_replies(standin) -> None:
    fake = standin([tool_turn(bash_command("ls -la"), text="looking"), text_turn("plain json")])
    client = client_for(fake)
    streamed = ask(client, "one two three")
    assert streamed.stop_reason == "tool_use"
    assert [b.type for b in streamed.content] == ["text", "tool_use"]
    assert streamed.content[1].input == {"command": "ls -la"}
    assert (
        streamed.usage.output_tokens == fake.requests[0].output_tokens == 3
    )  # "looking", "ls", "-la"
    plain = client.messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert plain.content[0].text == "plain json" and plain._request_id == "req_standin_2"
    assert fake.requests[1].body.get("stream") is None
    with pytest.raises(anthropic.BadRequestError, match="script exhausted"):
        ask(client, "nothing left")


def test_max_tokens_and_token_counting(standin) -> None:
    fake = standin([text_turn("one two three four five six")])
    message = ask(client_for(fake), "x", max_tokens=4)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "one two three four"
    assert count_tokens({"a": "b c", "cache_control": {"type": "ephemeral"}, "d": ["e"]}) == 3
    counted = client_for(fake).messages.count_tokens(
        model="m", messages=[{"role": "user", "content": "a b c"}]
    )
    assert counted.input_tokens == 4  # "user" + 3 words


def test_cache_emulation(standin) -> None:
    fake = standin([text_turn("a"), text_turn("b")])
    client = client_for(fake)
    long_prompt = " ".join(["word"] * 50)
    ask(client, long_prompt, cache_control={"type": "ephemeral"})
    ask(client, long_prompt, cache_control={"type": "ephemeral"})
    first, second = fake.requests
    assert first.cache_creation_input_tokens > 50 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens


def test_invalid_requests_and_broken_responders_fail_fast(standin) -> None:
    fake = standin([text_turn("never")])
    client = client_for(fake)
    dangling = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}],
        },
        {"role": "user", "content": "no result given"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="tool_result"):
        client.messages.create(model="m", max_tokens=10, messages=dangling)

    def broken(body: dict[str, Any]) -> Reply:
        raise KeyError("oops")

    fake = standin(responder=broken)
    with pytest.raises(anthropic.InternalServerError, match="responder failed"):
        ask(client_for(fake), "hi")
    assert len(fake.requests) == 1  # x-should-retry: false
