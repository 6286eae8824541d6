"""Plain events decode their header values on demand: the answers must be those of decoding
every line up front, for any header block (FreeSWITCH's own, and odd ones it never sends)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import ESLProtocolError
from callcenter.protocols.esl import (
    ESLEvent,
    ESLParser,
    encode_connect_reply,
    encode_event_plain,
    fs_url_decode,
)


def _eager(lines: list[str]) -> list[tuple[str, str]]:
    """The plain-event rules, one line at a time: named up to the first ``": "`` (or the first
    ``:`` without one), values URL-decoded, ``_undef_`` empty."""
    pairs = []
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            assert sep
        pairs.append((name, "" if value == "_undef_" else fs_url_decode(value)))
    return pairs


def _plain_message(head: str, body: bytes = b"") -> bytes:
    inner = head.encode("utf-8") + b"\n\n" + body if body else head.encode("utf-8") + b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def _decoded(data: bytes) -> ESLEvent:
    [message] = ESLParser().feed(data)
    event = message.event
    assert event is not None
    return event


def _check_lookups(data: bytes, pairs: list[tuple[str, str]], extra: list[str]) -> None:
    first: dict[str, str] = {}
    folded: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
        folded.setdefault(name.lower(), value)
    names = {name for name, _ in pairs} | set(extra)
    names |= {n.upper() for n in names} | {n.lower() for n in names} | {n.swapcase() for n in names}
    lazy, whole = _decoded(data), _decoded(data)
    assert dict(whole.headers) == first  # decodes every line before any lookup
    for event in (lazy, whole):
        for name in sorted(names):
            assert event.headers.get(name) == first.get(name), name
            assert (name in event.headers) == (name in first), name
            expected = first.get(name, folded.get(name.lower()))
            assert event.get(name) == expected, name
            assert event.get(name) == expected, name  # cached the second time
        assert event.name == first.get("Event-Name", "")
        assert event.unique_id == first.get("Unique-ID")
        assert event.pairs == tuple(pairs)
        assert dict(event.headers) == first
        assert len(event.headers) == len(first)


name_chars = st.sampled_from(list("aAbBzZ-_:% 0\u00e9"))
value_chars = st.sampled_from(list("aAxX:%%% 0123456789CcFf_\u00e9\\"))
names = st.text(name_chars, max_size=8)
values = st.one_of(st.text(value_chars, max_size=12), st.just("_undef_"), st.just("%5Fundef_"))
lines = st.tuples(names, st.sampled_from([": ", ":", ":  ", ": : "]), values).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.lists(lines, min_size=1, max_size=12), st.lists(names, max_size=4))
def test_lazy_lookups_answer_as_decoding_every_line(block: list[str], extra: list[str]) -> None:
    data = _plain_message("\n".join(block))
    if not "\n".join(block).strip("\n") or any(":" not in line for line in block):
        return
    _check_lookups(data, _eager(block), extra)


@settings(max_examples=200, deadline=None)
@given(st.lists(lines, max_size=6), st.binary(min_size=1, max_size=20))
def test_lazy_event_with_a_body_drops_the_inner_content_length(
    block: list[str], body: bytes
) -> None:
    head = "\n".join([*block, f"Content-Length: {len(body)}"])
    data = _plain_message(head, body)
    assert _decoded(data).body == body.decode("utf-8", "replace")
    _check_lookups(data, _eager(block), ["Content-Length"])


def test_a_line_without_colon_still_raises_when_the_event_is_read() -> None:
    for head in ["Event-Name: X\nnonsense", "nonsense\nEvent-Name: X", "a: b\n\u00e9\nc: d"]:
        [message] = ESLParser().feed(_plain_message(head))
        with pytest.raises(ESLProtocolError, match="without ':'"):
            _ = message.event


def test_a_body_without_its_inner_content_length_still_raises() -> None:
    for head in ["Event-Name: X", "Event-Name: X\nContent-Length: 4", "Content-Length: x"]:
        [message] = ESLParser().feed(_plain_message(head, b"abc"))
        with pytest.raises(ESLProtocolError):
            _ = message.event


def test_lazy_and_eager_events_compare_hash_and_print_alike() -> None:
    pairs = [("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u1"), ("Caller", "a b%")]
    lazy = _decoded(encode_event_plain(pairs))
    eager = ESLEvent.from_pairs(pairs)
    assert lazy == eager and hash(lazy) == hash(eager)
    assert repr(lazy) == repr(eager)
    assert lazy != ESLEvent.from_pairs(pairs[:2])
    assert copy.copy(lazy) == lazy
    assert pickle.loads(pickle.dumps(lazy)) == eager
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.body = "x"


def test_connect_reply_decodes_lazily_to_the_same_channel_data() -> None:
    channel = [
        ("Event-Name", "CHANNEL_DATA"),
        ("Unique-ID", "u1"),
        ("Caller-Caller-ID-Name", "Jos\u00e9 M"),
        ("variable_empty", ""),
        ("variable_route", "inbound?queue=sales"),
    ]
    [reply] = ESLParser().feed(encode_connect_reply(channel))
    event = reply.event
    assert event is not None
    tail = [
        ("Content-Type", "command/reply"),
        ("Reply-Text", "+OK\n"),
        ("Socket-Mode", "async"),
        ("Control", "full"),
    ]
    assert event == ESLEvent.from_pairs([*channel, *tail])
    assert event.variable("route") == "inbound?queue=sales"
    assert event.get("caller-caller-id-name") == "Jos\u00e9 M"
    assert event.variable("empty") == ""
