"""The stream reader is correct however the bytes are split on the wire."""

from __future__ import annotations

import pytest

from openrouter import client
from openrouter.streaming import (
    Failed,
    Finished,
    Interrupted,
    Served,
    ServerSentEvent,
    SSEDecoder,
    StreamEvent,
    StreamParser,
    TextDelta,
    Usage,
)

# Edge cases of the SSE format and of OpenRouter's habits, in one stream: comments, CRLF, a
# multi-line data field, a chunk with empty choices, a usage-only chunk, and multi-byte UTF-8.
EDGES = (
    b": OPENROUTER PROCESSING\r\n\r\n"
    b'data: {"id":"gen-1","model":"m/x","choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"id":"gen-1","model":"m/x","choices":[{"delta":{"content":"h\xc3\xa9llo \xe2\x9c\x93 "}}]}\r\n\r\n'
    b": keep-alive\n\n"
    b'data: {"id":"gen-1","model":"m/x",\ndata: "choices":[{"delta":{"content":"\xf0\x9f\x9a\x80 done"}}]}\n\n'
    b'data: {"id":"gen-1","choices":[]}\n\n'
    b'data: {"id":"gen-1","choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"gen-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,'
    b'"total_tokens":7,"cost":0.00012}}\n\n'
    b"data: [DONE]\n\n"
)


def read(chunks: list[bytes], generation_id: str | None = None) -> list[StreamEvent]:
    """The events of a body that arrives as ``chunks`` and then ends, as the client reads it."""
    parser = StreamParser(generation_id)
    events = parser.opening()
    for chunk in chunks:
        events += parser.feed(chunk)
    if not parser.ended:
        events.append(parser.interrupted("ended without [DONE]"))
    return events


def test_edge_cases_parse_to_the_expected_events() -> None:
    assert read([EDGES]) == [
        Served("m/x", "gen-1"),  # once, from the first chunk, before any text
        TextDelta("héllo ✓ "),
        TextDelta("🚀 done"),
        Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7, cost=0.00012),
        Finished("stop", "m/x", "gen-1"),
    ]


def test_the_headers_generation_id_is_said_at_once_and_a_chunks_change_again() -> None:
    events = read([EDGES], "gen-from-header")
    assert events[:3] == [
        Served(None, "gen-from-header"),  # before any chunk: a stop now can still be asked about
        Served("m/x", "gen-1"),
        TextDelta("héllo ✓ "),
    ]
    assert sum(isinstance(event, Served) for event in events) == 2


def test_split_at_every_byte_offset_the_events_are_the_same() -> None:
    expected = read([EDGES])
    for offset in range(1, len(EDGES)):
        assert read([EDGES[:offset], EDGES[offset:]]) == expected, offset


def test_one_byte_at_a_time_the_events_are_the_same() -> None:
    assert read([EDGES[i : i + 1] for i in range(len(EDGES))]) == read([EDGES])


async def test_a_recorded_sandbox_stream_split_anywhere_gives_the_same_events(
    api_key: str, sandbox_url: str
) -> None:
    response = await client.async_client().post(
        client.api_url("chat/completions"),
        headers=client.headers(api_key),
        json={
            "messages": [{"role": "user", "content": "python code"}],
            "stream": True,
            "max_tokens": 60,
        },
    )
    recorded = response.content
    assert recorded.startswith(b":")  # OpenRouter's processing comment comes first
    expected = read([recorded])
    assert isinstance(expected[-1], Finished)
    for offset in range(1, len(recorded), 7):
        assert read([recorded[:offset], recorded[offset:]]) == expected, offset


def test_an_end_without_done_is_interrupted() -> None:
    events = read([EDGES.replace(b"data: [DONE]\n\n", b"")])
    assert isinstance(events[-1], Interrupted)
    assert not any(isinstance(e, Finished) for e in events)


def test_an_error_chunk_fails_after_the_text_that_came_before() -> None:
    stream = (
        b'data: {"id":"g","choices":[{"delta":{"content":"partial"}}]}\n\n'
        b'data: {"id":"g","error":{"code":502,"message":"Provider returned error",'
        b'"metadata":{"error_type":"provider_unavailable"}},'
        b'"choices":[{"delta":{"content":""},"finish_reason":"error"}]}\n\n'
    )
    served, *events = read([stream])
    assert served == Served(None, "g")
    assert events[0] == TextDelta("partial")
    assert isinstance(events[1], Failed)
    assert events[1].error.status == 502
    assert len(events) == 2


@pytest.mark.parametrize("garbage", [b"data: {not json}\n\n", b"data: [1,2]\n\n", b"data:\n\n"])
def test_odd_chunks_are_skipped_not_fatal(garbage: bytes) -> None:
    events = read([garbage + EDGES])
    assert events == read([EDGES])


def test_json_that_only_the_standard_library_reads_still_gives_its_text() -> None:
    """Chunks are parsed with orjson; what it refuses and ``json`` reads is not lost, and half
    an emoji (a lone surrogate) becomes U+FFFD, so the text can be stored and sent."""
    stream = (
        b'data: {"id":"g","score":NaN,"choices":[{"delta":{"content":"nan"}}]}\n\n'
        b'data: {"id":"g","choices":[{"delta":{"content":" half \\ud83d"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    _served, *events = read([stream])
    assert events[0] == TextDelta("nan")
    assert isinstance(events[1], TextDelta) and events[1].text.startswith(" half \ufffd")
    events[1].text.encode("utf-8")  # valid Unicode: no surrogate left
    assert isinstance(events[2], Finished)


# --- the SSE framing itself (WHATWG HTML, "Interpreting an event stream") ---------------------

FRAMING = (
    b"\xef\xbb\xbf: a comment after the byte-order mark\r"
    b"event: add\rdata: 73857293\r\r"
    b"id: 7\r\nretry: 1500\r\ndata: first\r\ndata:second\r\ndata\r\n\r\n"
    b"event: x\nid: 8\x009\ndata: caf\xc3\xa9\n\n"
    b"event: ignored\n\n"
    b"data: never dispatched"
)


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_cr_crlf_and_lf_fields_comments_and_an_unfinished_event() -> None:
    assert decode([FRAMING]) == [
        ServerSentEvent("73857293", event="add"),
        ServerSentEvent("first\nsecond\n", id="7", retry=1500),
        ServerSentEvent("café", event="x", id="7", retry=1500),  # an id with NUL is ignored
    ]


def test_the_framing_split_at_every_byte_offset_is_the_same() -> None:
    expected = decode([FRAMING])
    for offset in range(1, len(FRAMING)):
        assert decode([FRAMING[:offset], FRAMING[offset:]]) == expected, offset
    assert decode([FRAMING[i : i + 1] for i in range(len(FRAMING))]) == expected
