"""FreeSWITCH Event Socket codec: replayed against real captured traffic, then fuzzed.

The traces live in ../shared/traces/freeswitch (next to the repo); trace-driven tests skip when
that folder is absent, the property tests always run.
"""

from __future__ import annotations

import contextlib
import json
import lzma
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.errors import ESLProtocolError
from callcenter.protocols.esl import (
    DISCONNECT_GOODBYE,
    ESLCommand,
    ESLCommandParser,
    ESLEvent,
    ESLMessage,
    ESLParser,
    decode_event,
    encode_api_response,
    encode_auth_request,
    encode_command,
    encode_connect_reply,
    encode_disconnect_notice,
    encode_event_json,
    encode_event_plain,
    encode_reply,
    encode_sendevent,
    encode_sendmsg,
    fs_url_decode,
    fs_url_encode,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "freeswitch"
NO_TRACES = f"FreeSWITCH traces not found at {TRACES} (../shared next to the repo)"
TRACE_FILES = (
    [*sorted(p.name for p in TRACES.glob("*.jsonl")), "i_load.full.jsonl.xz"]
    if TRACES.is_dir()
    else [pytest.param("absent", marks=pytest.mark.skip(reason=NO_TRACES))]
)

Streams = dict[tuple[int, str], list[bytes]]


def _require_traces() -> None:
    if not TRACES.is_dir():
        pytest.skip(NO_TRACES)


@cache
def streams(name: str) -> Streams:
    """The messages of one trace file per (conn, dir), as bytes, in wire order."""
    _require_traces()
    path = TRACES / name
    opener = lzma.open if name.endswith(".xz") else open
    out: Streams = defaultdict(list)
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            out[(record["conn"], record["dir"])].append(record["data"].encode("utf-8"))
    return dict(out)


@cache
def inbound(name: str, conn: int = 1) -> tuple[ESLMessage, ...]:
    """What FreeSWITCH sent on one connection, parsed from the whole stream at once."""
    return tuple(ESLParser().feed(b"".join(streams(name)[(conn, "in")])))


@cache
def outbound(name: str, conn: int = 1) -> tuple[ESLCommand, ...]:
    """What the client sent on one connection, parsed from the whole stream at once."""
    return tuple(ESLCommandParser().feed(b"".join(streams(name)[(conn, "out")])))


def events(name: str, conn: int = 1) -> list[ESLEvent]:
    return [m.event for m in inbound(name, conn) if m.event is not None and m.is_event]


def replies(name: str, conn: int = 1) -> list[ESLMessage]:
    return [m for m in inbound(name, conn) if m.content_type == "command/reply"]


# ---------------------------------------------------------------------------------------
# Replay of every captured file
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRACE_FILES)
def test_every_captured_message_is_framed_and_gives_back_its_exact_bytes(name: str) -> None:
    for (conn, direction), wire in streams(name).items():
        parser: ESLParser | ESLCommandParser
        parser = ESLParser() if direction == "in" else ESLCommandParser()
        whole = inbound(name, conn) if direction == "in" else outbound(name, conn)
        assert [m.encode() for m in whole] == wire, (conn, direction)
        one_by_one = [m for data in wire for m in parser.feed(data)]
        assert one_by_one == list(whole)
        assert [m.encode() for m in one_by_one] == wire
        assert parser.buffered == 0


@pytest.mark.parametrize("name", TRACE_FILES)
def test_every_captured_event_decodes_with_an_event_name(name: str) -> None:
    for (conn, direction), _wire in streams(name).items():
        if direction != "in":
            continue
        for message in inbound(name, conn):
            event = message.event
            if message.is_event:
                assert event is not None
                assert event.name, message.body[:200]
            elif message.is_connect_reply:
                assert event is not None and event.name == "CHANNEL_DATA"
            else:
                assert event is None


@pytest.mark.parametrize("name", TRACE_FILES)
def test_reencoding_decoded_events_reproduces_freeswitch_bytes(name: str) -> None:
    checked = 0
    for (conn, direction), _wire in streams(name).items():
        if direction != "in":
            continue
        for message in inbound(name, conn):
            event = message.event
            if event is None:
                continue
            if message.content_type == "text/event-plain":
                assert encode_event_plain(event.pairs, event.body) == message.raw
            elif message.content_type == "text/event-json":
                assert encode_event_json(event.pairs, event.body) == message.raw
            elif message.is_connect_reply:
                channel_data = event.pairs[:-4]  # Content-Type, Reply-Text, Socket-Mode, Control
                assert encode_connect_reply(channel_data) == message.raw
            else:
                continue
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", TRACE_FILES)
def test_client_encoders_rebuild_every_captured_command(name: str) -> None:
    for (conn, direction), _wire in streams(name).items():
        if direction != "out":
            continue
        for command in outbound(name, conn):
            own = [(k, v) for k, v in command.headers if k.lower() != "content-length"]
            body = command.body or None
            if command.name == "sendmsg":
                rebuilt = encode_sendmsg(command.args or None, own, body)
            elif command.name == "sendevent":
                rebuilt = encode_sendevent(command.args, own, body)
            else:
                rebuilt = encode_command(command.line, command.headers)
            assert rebuilt == command.raw


@pytest.mark.parametrize("name", TRACE_FILES)
def test_server_encoders_rebuild_every_captured_reply(name: str) -> None:
    for (conn, direction), _wire in streams(name).items():
        if direction != "in":
            continue
        for message in inbound(name, conn):
            kind = message.content_type
            if kind == "auth/request":
                assert encode_auth_request() == message.raw
            elif kind == "command/reply" and not message.is_connect_reply:
                assert message.headers[:1] == (("Content-Type", "command/reply"),)
                assert message.headers[1][0] == "Reply-Text"
                text = message.reply_text
                assert text is not None
                assert encode_reply(text, message.headers[2:]) == message.raw
            elif kind == "api/response":
                assert encode_api_response(message.body) == message.raw
            elif kind == "text/disconnect-notice":
                between = message.headers[1:-1]  # after Content-Type, before Content-Length
                assert encode_disconnect_notice(message.body_text, between) == message.raw


# ---------------------------------------------------------------------------------------
# Behaviours from the trace README, on real bytes
# ---------------------------------------------------------------------------------------


def test_freeswitch_greets_with_auth_request() -> None:
    first = inbound("a_auth_events_api.jsonl")[0]
    assert first.content_type == "auth/request"
    assert first.body == b""
    assert first.event is None


def test_good_password_is_accepted_and_command_reply_has_no_body() -> None:
    accepted = replies("a_auth_events_api.jsonl")[0]
    assert accepted.reply_text == "+OK accepted"
    assert accepted.body == b""
    assert outbound("a_auth_events_api.jsonl")[0].line == "auth REDACTED"


def test_wrong_password_gets_err_invalid_then_disconnect_notice() -> None:
    messages = inbound("g_errors.jsonl", conn=1)
    assert [m.content_type for m in messages] == [
        "auth/request",
        "command/reply",
        "text/disconnect-notice",
    ]
    assert messages[1].reply_text == "-ERR invalid"
    assert messages[2].body_text == DISCONNECT_GOODBYE


def test_errors_are_err_text_in_the_usual_content_types() -> None:
    texts = [m.reply_text for m in replies("g_errors.jsonl", conn=3)]
    assert "-ERR command not found" in texts
    assert "-ERR invalid session id [00000000-0000-0000-0000-000000000000]" in texts
    assert "-ERR no keywords supplied" in texts
    assert "-ERR not controlling a session" in texts
    api_bodies = [
        m.body_text for m in inbound("g_errors.jsonl", conn=3) if m.content_type == "api/response"
    ]
    assert api_bodies == [
        "-ERR nosuchcommand Command not found!\n",
        "-ERR No such channel!\n",
        "-ERR NORMAL_TEMPORARY_FAILURE\n",
    ]


def test_api_response_body_is_exactly_content_length_bytes() -> None:
    bodies = [
        m.body_text for m in inbound("a_auth_events_api.jsonl") if m.content_type == "api/response"
    ]
    assert bodies[0].startswith("UP 0 years") and len(bodies[0]) == 370
    assert bodies[1] == "\n0 total.\n"  # show channels starts with an empty line
    assert json.loads(bodies[2]) == {"row_count": 0}
    assert bodies[4] == "7\n"
    getvar = [
        m.body_text
        for m in inbound("b_ivr_playback_dtmf.jsonl")
        if m.content_type == "api/response"
    ]
    assert getvar == ["123"]  # uuid_getvar: no trailing newline


def test_bgapi_reply_names_the_job_and_background_job_event_carries_the_result() -> None:
    reply = next(
        m for m in replies("a_auth_events_api.jsonl") if "Job-UUID" in (m.reply_text or "")
    )
    job = reply.get("Job-UUID")
    assert reply.reply_text == f"+OK Job-UUID: {job}"
    result = next(e for e in events("a_auth_events_api.jsonl") if e.job_uuid == job)
    assert result.name == "BACKGROUND_JOB"
    assert result.get("Job-Command") == "status"
    assert result.body is not None and result.body.startswith("UP 0 years")
    assert "Content-Length" not in result.headers  # the inner framing is not a header


def test_bgapi_with_our_own_job_uuid_is_honoured() -> None:
    sent = next(c for c in outbound("a_auth_events_api.jsonl") if c.get("Job-UUID"))
    ours = sent.get("Job-UUID")
    assert sent.line == "bgapi uptime"
    assert sent.raw == encode_command("bgapi uptime", {"Job-UUID": str(ours)})
    reply = next(m for m in replies("a_auth_events_api.jsonl") if m.get("Job-UUID") == ours)
    assert reply.reply_text == f"+OK Job-UUID: {ours}"
    result = next(e for e in events("a_auth_events_api.jsonl") if e.job_uuid == ours)
    assert result.body == "7\n"


def test_custom_event_keeps_client_headers_and_its_body() -> None:
    custom = next(e for e in events("a_auth_events_api.jsonl") if e.name == "CUSTOM")
    assert custom.subclass == "fslab::test"
    assert custom.get("X-Lab-Header") == "hello world & more%"
    assert custom.get("content-length") == "32"  # the client's own header stays a header
    assert custom.get("Command") == "sendevent CUSTOM"
    assert custom.body == "custom event body line 1\nline 2\n"


def test_json_events_decode_with_body_and_repeated_headers() -> None:
    messages = [
        m for m in inbound("a_auth_events_api.jsonl") if m.content_type == "text/event-json"
    ]
    decoded = [m.event for m in messages]
    assert all(e is not None for e in decoded)
    names = [e.name for e in decoded if e is not None]
    assert names.count("CHANNEL_CREATE") == 2 and "BACKGROUND_JOB" in names
    job = next(e for e in decoded if e is not None and e.name == "BACKGROUND_JOB")
    assert job.body is not None and job.body.startswith("+OK ")
    assert "_body" not in job.headers and "Content-Length" not in job.headers
    assert job.get("FreeSWITCH-IPv6") == "fd00::2"  # JSON values are not URL-encoded
    hangup = next(e for e in decoded if e is not None and e.name == "CHANNEL_HANGUP_COMPLETE")
    causes = [v for k, v in hangup.pairs if k == "Hangup-Cause"]
    assert causes == ["NORMAL_CLEARING", "NORMAL_CLEARING"]
    assert hangup.get("Hangup-Cause") == "NORMAL_CLEARING"


def test_plain_event_values_are_url_decoded() -> None:
    api = next(e for e in events("a_auth_events_api.jsonl") if e.name == "API")
    assert api.get("FreeSWITCH-IPv6") == "fd00::2"
    assert api.get("Event-Date-GMT", "").startswith("Sun, 22 Nov 2026 ")
    assert api.get("event-date-gmt") == api.get("Event-Date-GMT")  # any case


def test_xml_event_decodes_headers_and_body() -> None:
    xml = next(m for m in inbound("a_auth_events_api.jsonl") if m.content_type == "text/event-xml")
    event = xml.event
    assert event is not None and event.name == "BACKGROUND_JOB"
    assert event.get("FreeSWITCH-IPv6") == "fd00::2"
    assert event.body is not None
    assert event.body.startswith("FreeSWITCH Version 1.10.12") and event.body.endswith(")\n")


def test_log_data_is_a_message_with_headers_and_body() -> None:
    log = next(m for m in inbound("a_auth_events_api.jsonl") if m.content_type == "log/data")
    assert log.get("Log-Level") == "5"
    assert log.get("User-Data") == ""
    assert log.body_text.endswith("fslab test log line\n")
    assert log.event is None


def test_exit_gets_ok_bye_then_disconnect_notice() -> None:
    last_two = inbound("a_auth_events_api.jsonl")[-2:]
    assert last_two[0].reply_text == "+OK bye"
    assert last_two[1].content_type == "text/disconnect-notice"
    assert last_two[1].body_text == DISCONNECT_GOODBYE


def test_outbound_connect_reply_is_the_url_encoded_channel_data() -> None:
    connect = inbound("o_outbound_socket.jsonl")[0]
    assert outbound("o_outbound_socket.jsonl")[0].line == "connect"
    assert connect.content_type == "command/reply"
    assert connect.is_connect_reply and not connect.is_event
    assert connect.get("Reply-Text") == "%2BOK%0A"
    assert connect.reply_text == "+OK"
    data = connect.event
    assert data is not None and data.name == "CHANNEL_DATA"
    assert data.get("Channel-Caller-ID-Name") == "Caller 1"
    assert data.get("Channel-Channel-Name") == "sofia/lab/555001@127.0.0.1:5180"
    assert data.variable("lab_route") == "esl_outbound"
    assert data.get("Socket-Mode") == "async" and data.get("Control") == "full"


def test_linger_notice_then_disconnect_notice_in_outbound_mode() -> None:
    notices = [
        m for m in inbound("o_outbound_socket.jsonl") if m.content_type == "text/disconnect-notice"
    ]
    linger, disconnect = notices
    assert linger.get("Content-Disposition") == "linger"
    assert linger.get("Linger-Time") == "5" and linger.body == b""
    assert linger.get("Channel-Name") == "sofia/lab/555001@127.0.0.1:5180"
    assert disconnect.get("Content-Disposition") == "disconnect"
    assert disconnect.body_text == DISCONNECT_GOODBYE


def test_sendmsg_body_is_framed_by_its_content_length() -> None:
    commands = outbound("b_ivr_playback_dtmf.jsonl")
    playback = next(c for c in commands if c.get("execute-app-name") == "playback")
    assert playback.body == b"/opt/fslab/sounds/prompt_2s.wav"
    assert playback.get("Content-Type") == "text/plain"
    after = commands[commands.index(playback) + 1]
    assert after.get("execute-app-name") == "play_and_get_digits"
    rebuilt = encode_sendmsg(
        playback.args,
        [(k, v) for k, v in playback.headers if k != "content-length"],
        "/opt/fslab/sounds/prompt_2s.wav",
    )
    assert rebuilt == playback.raw


def test_event_uuid_of_sendmsg_comes_back_as_application_uuid() -> None:
    sent = next(
        c
        for c in outbound("b_ivr_playback_dtmf.jsonl")
        if c.get("execute-app-name") == "play_and_get_digits"
    )
    ours = sent.get("Event-UUID")
    done = [
        e
        for e in events("b_ivr_playback_dtmf.jsonl")
        if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application-UUID") == ours
    ]
    assert len(done) == 1
    assert done[0].variable("lab_digits") == "123"
    assert done[0].unique_id == sent.args


def test_rfc2833_digits_arrive_as_dtmf_events() -> None:
    digits = [e.get("DTMF-Digit") for e in events("b_ivr_playback_dtmf.jsonl") if e.name == "DTMF"]
    assert digits == ["1", "2", "3", "#"]


# ---------------------------------------------------------------------------------------
# UTF-8 and chunking
# ---------------------------------------------------------------------------------------

CALLER = "José Müller 日本"


def _utf8_stream() -> bytes:
    """Messages whose wire bytes hold raw multi-byte UTF-8 (JSON values, bodies) or its
    percent-encoding (plain events)."""
    headers = {"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Name": CALLER, "Unique-ID": "u1"}
    return b"".join(
        [
            encode_event_plain(headers),
            encode_event_json(headers),
            encode_api_response(f"caller {CALLER}\n"),
            encode_event_plain({"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j"}, CALLER),
        ]
    )


def test_plain_events_percent_encode_non_ascii_like_freeswitch() -> None:
    assert fs_url_encode(CALLER) == "Jos%C3%A9%20M%C3%BCller%20%E6%97%A5%E6%9C%AC"
    assert fs_url_decode(fs_url_encode(CALLER)) == CALLER


def test_caller_name_split_inside_a_utf8_character_is_kept() -> None:
    stream = _utf8_stream()
    expected = ESLParser().feed(stream)
    assert len(expected) == 4
    cuts = [i for i in range(1, len(stream)) if stream[i] & 0xC0 == 0x80]  # mid-character
    assert len(cuts) == 3 * 6  # raw in JSON, api body and job body; 6 continuation bytes each
    for cut in cuts:
        parser = ESLParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert got == expected
    plain, as_json, api, job = expected
    assert plain.event is not None and plain.event.get("Caller-Caller-ID-Name") == CALLER
    assert as_json.event is not None and as_json.event.get("Caller-Caller-ID-Name") == CALLER
    assert api.body_text == f"caller {CALLER}\n"
    assert job.event is not None and job.event.body == CALLER


@cache
def _chunking_stream() -> bytes:
    base = _utf8_stream()
    if TRACES.is_dir():
        base += b"".join(streams("b_ivr_playback_dtmf.jsonl")[(1, "in")][:12])
    return base


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_chunking_of_the_stream_gives_the_same_messages(data: st.DataObject) -> None:
    stream = _chunking_stream()
    expected = ESLParser().feed(stream)
    cuts = sorted(
        data.draw(st.sets(st.integers(min_value=1, max_value=len(stream) - 1), max_size=60))
    )
    parser = ESLParser()
    got: list[ESLMessage] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got.extend(parser.feed(stream[start:end]))
    assert got == expected
    assert [m.event for m in got] == [m.event for m in expected]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_chunking_of_commands_gives_the_same_commands(data: st.DataObject) -> None:
    stream = b"".join(
        [
            encode_command("auth ClueCon"),
            encode_command("bgapi status", {"Job-UUID": "abc"}),
            encode_sendmsg("u1", {"call-command": "execute", "execute-app-name": "playback"}, "x"),
            encode_sendevent("CUSTOM", {"Event-Subclass": "cc::x"}, f"{CALLER}\n\nmore"),
            encode_command("exit"),
        ]
    )
    expected = ESLCommandParser().feed(stream)
    assert [c.name for c in expected] == ["auth", "bgapi", "sendmsg", "sendevent", "exit"]
    cuts = sorted(
        data.draw(st.sets(st.integers(min_value=1, max_value=len(stream) - 1), max_size=30))
    )
    parser = ESLCommandParser()
    got: list[ESLCommand] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got.extend(parser.feed(stream[start:end]))
    assert got == expected


# ---------------------------------------------------------------------------------------
# Garbage in: only ESLProtocolError out
# ---------------------------------------------------------------------------------------

_TOKENS = [
    b"\n",
    b"\n\n",
    b": ",
    b"Content-Length: ",
    b"content-length: 3",
    b"Content-Length: 9999999999999\n\n",
    b"Content-Length: -1\n\n",
    b"Content-Type: text/event-plain\n",
    b"Content-Type: text/event-json\n",
    b"Content-Type: text/event-xml\n",
    b"Content-Type: command/reply\n",
    b"Event-Name: X\n",
    b"Reply-Text: %2BOK%0A\n",
    b"{",
    b'"_body":',
    b"[[[[[[[[",
    b"<event><headers>",
    b"%",
    b"%0",
    b"%00",
    b"\\x",
    b"\xc3",
    b"_undef_",
    b"12",
    b"\r\n",
]

garbage = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(_TOKENS)), max_size=40).map(
    b"".join
)


def _touch(message: ESLMessage) -> None:
    """Use every decoding accessor a consumer would."""
    _ = (message.content_type, message.reply_text, message.body_text, message.is_event)
    event = message.event
    if event is not None:
        _ = (event.name, event.subclass, event.unique_id, event.job_uuid, event.get_array("x"))


@settings(max_examples=400, deadline=None)
@given(garbage, st.integers(min_value=1, max_value=64))
def test_random_bytes_raise_nothing_but_esl_protocol_error(data: bytes, chunk: int) -> None:
    parser = ESLParser(max_header_bytes=4096, max_body_bytes=4096)
    try:
        for i in range(0, len(data), chunk):
            for message in parser.feed(data[i : i + chunk]):
                with contextlib.suppress(ESLProtocolError):
                    _touch(message)
    except ESLProtocolError:
        with pytest.raises(ESLProtocolError):
            parser.feed(b"")  # a broken stream stays broken


@settings(max_examples=300, deadline=None)
@given(garbage, st.integers(min_value=1, max_value=64))
def test_random_commands_raise_nothing_but_esl_protocol_error(data: bytes, chunk: int) -> None:
    parser = ESLCommandParser(max_header_bytes=4096, max_body_bytes=4096)
    try:
        for i in range(0, len(data), chunk):
            for command in parser.feed(data[i : i + chunk]):
                _ = (command.name, command.args, command.body_text, command.get("x"))
    except ESLProtocolError:
        pass


def test_garbled_content_length_is_a_protocol_error() -> None:
    with pytest.raises(ESLProtocolError, match="Content-Length"):
        ESLParser().feed(b"Content-Type: api/response\nContent-Length: 1_0\n\n0123456789")


def test_header_line_without_colon_is_a_protocol_error() -> None:
    with pytest.raises(ESLProtocolError, match="header line"):
        ESLParser().feed(b"Content-Type: command/reply\nthis is not a header\n\n")


def test_endless_header_block_is_refused_before_memory_runs_out() -> None:
    parser = ESLParser(max_header_bytes=1000)
    parser.feed(b"Content-Type: x\n" + b"A" * 900)
    with pytest.raises(ESLProtocolError, match="header block"):
        parser.feed(b"A" * 200)


def test_huge_content_length_is_refused() -> None:
    with pytest.raises(ESLProtocolError, match="exceeds"):
        ESLParser(max_body_bytes=1000).feed(b"Content-Length: 1001\n\n")


def test_garbled_inner_event_raises_on_access_only() -> None:
    [message] = ESLParser().feed(b"Content-Length: 5\nContent-Type: text/event-json\n\n{nope")
    assert message.is_event
    with pytest.raises(ESLProtocolError, match="JSON"):
        _ = message.event
    with pytest.raises(ESLProtocolError):
        decode_event(message)


def test_stray_newlines_between_messages_are_skipped() -> None:
    reply = encode_reply("+OK")
    parser = ESLParser()
    messages = parser.feed(b"\n\n" + reply + b"\n" + reply + b"\n")
    assert [m.reply_text for m in messages] == ["+OK", "+OK"]
    assert parser.feed(reply) == [messages[0]]


def test_command_parser_accepts_crlf_and_leading_blank_lines_like_freeswitch() -> None:
    [auth, api] = ESLCommandParser().feed(b"\r\n\nauth ClueCon\r\n\r\napi status\n\n")
    assert auth.name == "auth" and auth.args == "ClueCon"
    assert api.line == "api status"


# ---------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "headers"),
    [
        ("api status\n\nexit", {}),
        ("api status\rx", {}),
        ("api status\x00", {}),
        ("", {}),
        ("   ", {}),
        ("bgapi status", {"Job-UUID": "x\nexit"}),
        ("bgapi status", {"Job:UUID": "x"}),
        ("bgapi status", {"content-length": "5"}),
    ],
)
def test_command_injection_is_refused(line: str, headers: dict[str, str]) -> None:
    with pytest.raises(ESLProtocolError):
        encode_command(line, headers)


def test_sendmsg_refuses_a_uuid_that_would_inject_a_command() -> None:
    with pytest.raises(ESLProtocolError):
        encode_sendmsg("u1\n\napi status", {"call-command": "hangup"})
    with pytest.raises(ESLProtocolError):
        encode_sendmsg("u1", {"execute-app-arg": "a\nb"})
    with pytest.raises(ESLProtocolError):
        encode_sendmsg("u1", {"content-length": "3"}, "abc")


def test_sendmsg_without_uuid_targets_the_outbound_socket_channel() -> None:
    assert encode_sendmsg(None, {"call-command": "hangup", "hangup-cause": "NORMAL_CLEARING"}) == (
        b"sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"
    )


def test_event_encoders_refuse_header_names_that_break_framing() -> None:
    for bad in ["", "a:b", "a\nb", "a\x00"]:
        with pytest.raises(ESLProtocolError):
            encode_event_plain({bad: "v"})
    with pytest.raises(ESLProtocolError):
        encode_event_plain({"a": "v\x00"})
    with pytest.raises(ESLProtocolError):
        encode_event_json({"_body": "v"})


def test_empty_value_is_sent_as_undef_like_freeswitch() -> None:
    wire = encode_event_plain([("Event-Name", "X"), ("Empty", ""), ("Literal", "_undef_")])
    assert b"Empty: _undef_\n" in wire
    [message] = ESLParser().feed(wire)
    assert message.event is not None
    assert message.event.pairs == (("Event-Name", "X"), ("Empty", ""), ("Literal", "_undef_"))


def test_json_arrays_are_array_values() -> None:
    wire = encode_event_json([("Event-Name", "X"), ("Multi", "ARRAY::a|:b")])
    assert b'"Multi":["a","b"]' in wire
    [message] = ESLParser().feed(wire)
    assert message.event is not None
    assert message.event.get_array("Multi") == ["a", "b"]
    assert message.event.get_array("Event-Name") == ["X"]
    assert message.event.get_array("absent") == []


header_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=":\r\n\x00"),
    min_size=1,
    max_size=20,
)
header_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(header_names, header_values), min_size=1, max_size=12),
    st.none() | header_values,
)
def test_plain_event_round_trips(pairs: list[tuple[str, str]], body: str | None) -> None:
    [message] = ESLParser().feed(encode_event_plain(pairs, body))
    assert message.event == ESLEvent.from_pairs(pairs, body or None)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(header_names.filter(lambda n: n.lower() != "_body"), header_values),
        min_size=1,
        max_size=12,
    ),
    st.none() | header_values,
)
def test_json_event_round_trips(pairs: list[tuple[str, str]], body: str | None) -> None:
    [message] = ESLParser().feed(encode_event_json(pairs, body))
    assert message.event == ESLEvent.from_pairs(pairs, body)


command_words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")
command_header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
command_header_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=30,
).map(lambda s: s.lstrip(" "))  # mod_event_socket drops leading spaces of a value


@settings(max_examples=200, deadline=None)
@given(
    command_words,
    st.lists(
        st.tuples(
            command_header_names.filter(lambda n: n.lower() != "content-length"),
            command_header_values,
        ),
        max_size=5,
    ),
)
def test_command_round_trips(line: str, headers: list[tuple[str, str]]) -> None:
    [command] = ESLCommandParser().feed(encode_command(line, headers))
    assert command.line == line
    assert command.headers == tuple(headers)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[0-9a-f-]{1,36}", fullmatch=True) | st.none(),
    st.lists(
        st.tuples(
            command_header_names.filter(lambda n: n.lower() != "content-length"),
            command_header_values,
        ),
        max_size=5,
    ),
    st.binary(min_size=1, max_size=200),
)
def test_sendmsg_with_body_round_trips(
    uuid: str | None, headers: list[tuple[str, str]], body: bytes
) -> None:
    [command] = ESLCommandParser().feed(encode_sendmsg(uuid, headers, body))
    assert command.name == "sendmsg"
    assert command.args == (uuid or "")
    assert command.headers == (*headers, ("content-length", str(len(body))))
    assert command.body == body
