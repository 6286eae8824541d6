"""The AMI codec against real Asterisk 22 wire traces, arbitrary chunking and hostile input."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.errors import AMIProtocolError, ProtocolError
from callcenter.protocols.ami import (
    AMIBanner,
    AMIMessage,
    AMIParser,
    encode_action,
    encode_message,
    is_list_complete,
    is_list_start,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "asterisk"

needs_traces = pytest.mark.skipif(
    not TRACES.is_dir(), reason=f"real Asterisk traces not found at {TRACES}"
)

Key = tuple[int, str]  # (conn, dir)


def _ami_files(chunks: bool) -> list[str]:
    if not TRACES.is_dir():
        return []
    names = [p.name for p in TRACES.glob("*.jsonl*") if p.name.endswith((".jsonl", ".jsonl.gz"))]
    names += [f"fastagi/{p.name}" for p in (TRACES / "fastagi").glob("*.jsonl")]
    picked = []
    for name in names:
        is_ami = not name.startswith("fastagi/") or name.endswith(
            (".ami.jsonl", "f00_ami_side.jsonl")
        )
        if is_ami and (".chunks." in name) == chunks:
            picked.append(name)
    return sorted(picked)


def _records(name: str) -> Iterator[dict[str, object]]:
    path = TRACES / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


@cache
def _streams(name: str) -> dict[Key, list[bytes]]:
    """Per (conn, dir): the list of ``data`` records as bytes (eof markers dropped)."""
    streams: dict[Key, list[bytes]] = defaultdict(list)
    for rec in _records(name):
        assert not rec.get("partial"), f"{name}: trailing partial record"
        if "data" in rec:
            streams[(int(rec["conn"]), str(rec["dir"]))].append(str(rec["data"]).encode())
    return dict(streams)


def _parse_all(chunks: list[bytes], direction: str) -> list[AMIBanner | AMIMessage]:
    parser = AMIParser(expect_banner=direction == "in")
    out: list[AMIBanner | AMIMessage] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    assert parser.eof() == b""
    return out


@needs_traces
@pytest.mark.parametrize("name", _ami_files(chunks=False))
def test_every_trace_message_decodes_and_reencodes_to_its_exact_bytes(name: str) -> None:
    for (conn, direction), records in _streams(name).items():
        where = f"{name} conn {conn} {direction}"
        whole = _parse_all([b"".join(records)], direction)
        assert len(whole) == len(records), where
        for msg, data in zip(whole, records, strict=True):
            assert msg.encode() == data, where
            if isinstance(msg, AMIBanner):
                assert AMIBanner(msg.text).encode() == data
                continue
            # rebuilt from the parsed headers alone, the bytes are still identical
            assert AMIMessage.from_pairs(msg.headers).encode() == data, where
            assert msg.extra == ()
            if direction == "out":
                assert msg.kind == "action" or msg.get("ActionID") == "g2-noaction", where
            else:
                assert msg.kind in ("event", "response"), where
        if direction == "in":
            assert isinstance(whole[0], AMIBanner)
            assert whole[0].text == "Asterisk Call Manager/11.0.0"
            assert whole[0].version == "11.0.0"
        # one record at a time gives the same messages
        assert _parse_all(records, direction) == whole, where


@needs_traces
@pytest.mark.parametrize("name", _ami_files(chunks=True))
def test_raw_tcp_reads_give_the_same_messages_as_the_message_file(name: str) -> None:
    reads = _streams(name)
    messages = _streams(name.replace(".chunks.jsonl", ".jsonl"))
    assert reads.keys() == messages.keys()
    for key, chunks in reads.items():
        expected = _parse_all([b"".join(messages[key])], key[1])
        got = _parse_all(chunks, key[1])
        assert got == expected
        assert [m.encode() for m in got] == messages[key]
    # the reads really do bundle several messages per read (01 also splits messages)
    in_reads = [c for (_, d), cs in reads.items() if d == "in" for c in cs]
    assert any(c.count(b"\r\n\r\n") > 1 for c in in_reads)
    if name.startswith("01_"):
        assert any(not c.endswith(b"\r\n\r\n") for c in in_reads[1:])


@needs_traces
def test_originate_response_is_an_event_although_it_has_a_response_header() -> None:
    originate = [
        m
        for (_, direction), records in _streams("05_c2_originate_bridge.jsonl").items()
        if direction == "in"
        for m in _parse_all(records, "in")
        if isinstance(m, AMIMessage) and m.name == "OriginateResponse"
    ]
    assert originate
    for msg in originate:
        assert msg.kind == "event"
        assert msg.get("Response") == "Success"


@needs_traces
def test_list_responses_open_and_close_in_pairs() -> None:
    records = _streams("01_a_basic.jsonl")[(1, "in")]
    msgs = [m for m in _parse_all(records, "in") if isinstance(m, AMIMessage)]
    starts = [m.action_id for m in msgs if is_list_start(m)]
    completes = [m.action_id for m in msgs if is_list_complete(m)]
    assert starts
    assert starts == completes
    assert all(m.kind == "response" for m in msgs if is_list_start(m))
    assert all(m.kind == "event" for m in msgs if is_list_complete(m))


@needs_traces
def test_async_agi_exec_command_id_is_found_whatever_its_case() -> None:
    records = _streams("02_b_ivr_dtmf_rfc2833.jsonl")
    msgs = [
        m
        for key, recs in records.items()
        if key[1] == "in"
        for m in _parse_all(recs, "in")
        if isinstance(m, AMIMessage) and m.name == "AsyncAGIExec"
    ]
    assert msgs
    for msg in msgs:
        assert any(k == "CommandId" for k, _ in msg.headers)  # Asterisk's spelling
        assert msg.get("CommandID") == msg.get("commandid") == msg["COMMANDID"]
        assert "commandID" in msg


# ---------------------------------------------------------------------------------------------
# Message API


def test_lookups_ignore_case_and_return_the_first_occurrence() -> None:
    msg = AMIMessage.build(
        ("Response", "Success"),
        ("ActionID", "a-9"),
        ("Output", "line 1"),
        ("output", "line 2"),
        ("Value", ""),
    )
    assert msg.kind == "response"
    assert msg.name == "Success"
    assert msg.action_id == "a-9"
    assert msg.get("OUTPUT") == "line 1"
    assert msg.get_all("Output") == ["line 1", "line 2"]
    assert msg.get("Value") == ""
    assert msg.get("missing") is None
    assert msg.get("missing", "x") == "x"
    assert "value" in msg
    assert "missing" not in msg
    with pytest.raises(KeyError):
        msg["missing"]
    assert msg.as_dict()["actionid"] == "a-9"


def test_kind_comes_from_the_first_header_only() -> None:
    assert AMIMessage.build(("Event", "Hangup")).kind == "event"
    assert AMIMessage.build(("action", "ping")).kind == "action"
    assert AMIMessage.build(("Response", "Error")).kind == "response"
    assert AMIMessage.build(("ActionID", "x"), ("Action", "Ping")).kind == "unknown"
    assert AMIMessage(()).kind == "unknown"
    assert AMIMessage(()).name == ""
    assert AMIMessage.build(("Event", "Hangup")).action_id is None


def test_built_message_equals_the_decoded_one() -> None:
    built = AMIMessage.from_pairs({"Event": "Hangup", "Channel": "PJSIP/a-1", "Cause": "16"})
    (decoded,) = AMIParser(expect_banner=False).feed(built.encode())
    assert decoded == built
    assert hash(decoded) == hash(built)


def test_encode_action_puts_action_and_action_id_first_and_keeps_repeated_keys() -> None:
    data = encode_action(
        "Originate",
        "o-1",
        [("Channel", "PJSIP/agent1"), ("Variable", "A=1"), ("Variable", "B=2")],
    )
    assert data == (
        b"Action: Originate\r\nActionID: o-1\r\nChannel: PJSIP/agent1\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    assert encode_action("Ping") == b"Action: Ping\r\n\r\n"
    assert encode_action("Getvar", fields={"Variable": "X"}) == (
        b"Action: Getvar\r\nVariable: X\r\n\r\n"
    )


@pytest.mark.parametrize(
    "pairs",
    [
        [("Action", "Hangup"), ("Channel", "PJSIP/a\r\nAction: Originate")],
        [("Action", "Ping"), ("Channel", "x\n")],
        [("Action", "Ping"), ("Chan\rnel", "x")],
        [("Action", "Ping"), ("Channel", "x\r")],
        [("Act: ion", "Ping")],
        [("", "Ping")],
        [("Action", "caf\udce9")],
    ],
)
def test_header_injection_and_unencodable_text_are_refused(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(AMIProtocolError):
        encode_message(pairs)
    with pytest.raises(AMIProtocolError):
        AMIMessage.from_pairs(pairs).encode()


def test_banner_encodes_as_one_crlf_line() -> None:
    assert AMIBanner("Asterisk Call Manager/11.0.0").encode() == b"Asterisk Call Manager/11.0.0\r\n"
    assert AMIBanner("no version").version is None
    with pytest.raises(AMIProtocolError):
        AMIBanner("two\r\nlines").encode()


# ---------------------------------------------------------------------------------------------
# Framing details

UNICODE_EVENT = (
    "Event: Newchannel\r\nChannel: PJSIP/sipp-00000042\r\nCallerIDNum: 1001\r\n"
    "CallerIDName: José Müller 日本\r\nUniqueid: 1795337924.42\r\n\r\n"
).encode()


def test_caller_name_split_inside_a_utf8_character_is_kept() -> None:
    split_at = UNICODE_EVENT.index("é".encode()) + 1  # between the two bytes of é
    parser = AMIParser(expect_banner=False)
    assert parser.feed(UNICODE_EVENT[:split_at]) == []
    (msg,) = parser.feed(UNICODE_EVENT[split_at:])
    assert msg.get("CallerIDName") == "José Müller 日本"
    assert msg.encode() == UNICODE_EVENT


def test_every_single_byte_split_gives_the_same_message() -> None:
    stream = b"Asterisk Call Manager/11.0.0\r\n" + UNICODE_EVENT + UNICODE_EVENT
    expected = AMIParser().feed(stream)
    assert len(expected) == 3
    for cut in range(1, len(stream)):
        parser = AMIParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == expected
    parser = AMIParser()
    assert [m for i in range(len(stream)) for m in parser.feed(stream[i : i + 1])] == expected


def test_bare_lf_and_mixed_line_endings_are_tolerated() -> None:
    data = b"Action: Ping\nActionID: x-1\n\nAction: Logoff\r\nActionID: x-2\n\n"
    first, second = AMIParser(expect_banner=False).feed(data)
    assert first.headers == (("Action", "Ping"), ("ActionID", "x-1"))
    assert second.headers == (("Action", "Logoff"), ("ActionID", "x-2"))
    assert first.encode() + second.encode() == data


def test_blank_lines_between_messages_are_skipped() -> None:
    data = b"\r\n\r\nAction: Ping\r\n\r\n\r\nAction: Logoff\r\n\r\n"
    msgs = AMIParser(expect_banner=False).feed(data)
    assert [m.name for m in msgs if isinstance(m, AMIMessage)] == ["Ping", "Logoff"]


def test_lines_without_a_colon_are_kept_aside_not_lost() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\n"
        b"Asterisk 22.10.1 built by root\r\nNoSpace:value\r\n--END COMMAND--\r\n\r\n"
    )
    (msg,) = AMIParser(expect_banner=False).feed(data)
    assert msg.kind == "response"
    assert msg.extra == ("Asterisk 22.10.1 built by root", "--END COMMAND--")
    assert msg.get("nospace") == "value"
    assert msg.encode() == data
    with pytest.raises(AMIProtocolError):
        AMIMessage(msg.headers, msg.extra).encode()


def test_invalid_utf8_is_replaced_but_the_exact_bytes_are_kept() -> None:
    data = b"Event: Newchannel\r\nCallerIDName: Jos\xe9 \xff\r\n\r\n"
    (msg,) = AMIParser(expect_banner=False).feed(data)
    assert msg.get("CallerIDName") == "Jos\ufffd \ufffd"
    assert msg.encode() == data


def test_a_message_that_never_ends_is_refused() -> None:
    parser = AMIParser(expect_banner=False, max_frame=1000)
    parser.feed(b"Event: Flood\r\n")
    with pytest.raises(AMIProtocolError, match="larger than 1000"):
        for _ in range(100):
            parser.feed(b"X: " + b"y" * 50 + b"\r\n")
    with pytest.raises(AMIProtocolError):
        parser.feed(b"\r\n\r\n")


def test_a_complete_but_oversized_message_is_refused_in_one_read_too() -> None:
    parser = AMIParser(expect_banner=False, max_frame=100)
    with pytest.raises(AMIProtocolError):
        parser.feed(b"Event: Big\r\nData: " + b"z" * 200 + b"\r\n\r\n")
    fitting = b"Event: Ok\r\nData: " + b"z" * 60 + b"\r\n\r\n"
    assert len(AMIParser(expect_banner=False, max_frame=100).feed(fitting)) == 1


def test_a_banner_that_never_ends_is_refused() -> None:
    parser = AMIParser()
    with pytest.raises(AMIProtocolError, match="banner"):
        parser.feed(b"HTTP/1.1 200 OK " + b"x" * 5000)


def test_eof_reports_an_unfinished_message() -> None:
    parser = AMIParser(expect_banner=False)
    assert parser.feed(b"Action: Ping\r\nActionID: 1\r\n") == []
    assert parser.buffered == len(b"Action: Ping\r\nActionID: 1\r\n")
    assert parser.eof() == b"Action: Ping\r\nActionID: 1\r\n"
    assert parser.eof() == b""


# ---------------------------------------------------------------------------------------------
# Properties


def _reference_stream() -> bytes:
    records = _streams("01_a_basic.jsonl")[(1, "in")] if TRACES.is_dir() else []
    fallback = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a-1\r\n\r\n"
    head = b"".join(records[:40]) if records else fallback
    return head + UNICODE_EVENT + b"Event: Mixed\nCallerIDName: \xe6\x97\xa5\n\n" + UNICODE_EVENT


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_chunking_gives_the_same_messages_as_one_read(data: st.DataObject) -> None:
    stream = _reference_stream()
    expected = AMIParser().feed(stream)
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(stream)), max_size=60), label="cut positions")
    )
    parser = AMIParser()
    got: list[AMIBanner | AMIMessage] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got.extend(parser.feed(stream[prev:cut]))
        prev = cut
    assert got == expected
    assert b"".join(m.encode() for m in got) == stream


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=600)
    | st.lists(
        st.sampled_from(
            [b"Event: X", b"\r\n", b"\n", b"\r", b":", b": ", b"\xc3", b"\xa9", b"junk", b""]
        ),
        max_size=40,
    ).map(b"".join),
    banner=st.booleans(),
    split=st.integers(0, 600),
)
def test_random_bytes_only_ever_raise_protocol_errors(raw: bytes, banner: bool, split: int) -> None:
    parser = AMIParser(expect_banner=banner, max_frame=200)
    try:
        out = parser.feed(raw[:split]) + parser.feed(raw[split:])
    except ProtocolError:
        return
    for item in out:
        # whatever was decoded re-encodes to the bytes it came from
        assert item.encode() in raw
        if isinstance(item, AMIMessage):
            assert item.kind in ("event", "response", "action", "unknown")


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.text(
                st.characters(blacklist_characters=":\r\n", blacklist_categories=["Cs"]),
                min_size=1,
            ),
            st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"])),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_encoded_messages_decode_to_the_same_headers(pairs: list[tuple[str, str]]) -> None:
    data = encode_message(pairs)
    (msg,) = AMIParser(expect_banner=False).feed(data)
    assert msg.headers == tuple(pairs)
    assert msg.encode() == data


_NAMES = ["Event", "event", "EVENT", "Uniqueid", "UniqueID", "Channel", "Key", "key:x", "x", "İd"]
_line = st.one_of(
    st.tuples(st.sampled_from(_NAMES), st.sampled_from([": ", ":", ":  ", ":\t"]), st.text()).map(
        "".join
    ),
    st.text(),
).map(lambda s: s.replace("\r", "").replace("\n", ""))


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(_line, min_size=1, max_size=8),
    endings=st.lists(st.sampled_from(["\r\n", "\n", "\r\r\n"]), min_size=8, max_size=8),
)
def test_a_received_message_reads_its_headers_as_the_split_headers_say(
    lines: list[str], endings: list[str]
) -> None:
    """Lookups on a received message search its text; they must give what the headers give,
    whatever the line endings, the case, the ``Key:value`` lines and non-ASCII text."""
    body = "".join(line + end for line, end in zip(lines, endings, strict=False)).rstrip("\r\n")
    if not body.strip("\r\n"):
        return
    received = AMIMessage.decoded(body)
    split = AMIMessage(received.headers, received.extra)
    fresh = AMIMessage.decoded(body)
    for name in [*_NAMES, "ActionID", "Missing"]:
        assert fresh.get(name) == split.get(name), name
        assert (name in fresh) == (name in split)
    assert (fresh.kind, fresh.name) == (split.kind, split.name)
    assert fresh == split
