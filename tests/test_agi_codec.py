"""The AGI codec (FastAGI streams, AsyncAGI payloads, command quoting) against real traces."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.errors import AGIProtocolError, ProtocolError
from callcenter.protocols.agi import (
    HANGUP_NOTICE,
    MAX_COMMAND_BYTES,
    TEXT_510,
    TEXT_511,
    TEXT_520_FOLLOWS,
    AGICommandParser,
    AGIEnvironment,
    AGIHangup,
    AGIResult,
    FastAGIParser,
    _parse_args,
    encode_command,
    encode_result,
    encode_usage_error,
    format_command,
    parse_result,
    split_command,
)
from callcenter.protocols.ami import AMIMessage, AMIParser, decode_agi_field, encode_agi_field

ASTERISK = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "asterisk"
FASTAGI = ASTERISK / "fastagi"

needs_traces = pytest.mark.skipif(
    not FASTAGI.is_dir(), reason=f"real Asterisk traces not found at {ASTERISK}"
)

Key = tuple[int, str]  # (conn, dir)
Item = AGIEnvironment | AGIResult | AGIHangup


def _fastagi_files(chunks: bool) -> list[str]:
    if not FASTAGI.is_dir():
        return []
    names = [
        p.name
        for p in FASTAGI.iterdir()
        if p.name.endswith((".jsonl", ".jsonl.gz"))
        and not p.name.endswith(".ami.jsonl")
        and p.name != "f00_ami_side.jsonl"
    ]
    return sorted(n for n in names if (".chunks." in n) == chunks)


def _records(path: Path) -> Iterator[dict[str, object]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


@cache
def _streams(path: Path) -> dict[Key, list[bytes]]:
    streams: dict[Key, list[bytes]] = defaultdict(list)
    for rec in _records(path):
        assert not rec.get("partial"), f"{path.name}: trailing partial record"
        if "data" in rec:
            streams[(int(rec["conn"]), str(rec["dir"]))].append(str(rec["data"]).encode())
    return dict(streams)


def _agi_in(chunks: list[bytes]) -> list[Item]:
    parser = FastAGIParser()
    out = [item for chunk in chunks for item in parser.feed(chunk)]
    assert parser.eof() == b""
    return out


def _agi_out(chunks: list[bytes]) -> list[str]:
    parser = AGICommandParser()
    out = [line for chunk in chunks for line in parser.feed(chunk)]
    assert parser.eof() == b""
    return out


@cache
def _all_items() -> list[tuple[str, Item]]:
    """(file name, item) for everything Asterisk sent in the FastAGI message files."""
    items = []
    for name in _fastagi_files(chunks=False):
        for (_, direction), records in _streams(FASTAGI / name).items():
            if direction == "in":
                items += [(name, item) for item in _agi_in(records)]
    return items


def _results_of(name: str) -> list[AGIResult]:
    return [item for n, item in _all_items() if n == name and isinstance(item, AGIResult)]


# ---------------------------------------------------------------------------------------------
# FastAGI replay


@needs_traces
@pytest.mark.parametrize("name", _fastagi_files(chunks=False))
def test_every_fastagi_record_decodes_to_one_item_with_its_exact_bytes(name: str) -> None:
    for (conn, direction), records in _streams(FASTAGI / name).items():
        where = f"{name} conn {conn} {direction}"
        if direction == "in":
            items = _agi_in([b"".join(records)])
            assert len(items) == len(records), where
            assert isinstance(items[0], AGIEnvironment), where
            assert not any(isinstance(i, AGIEnvironment) for i in items[1:]), where
            for item, data in zip(items, records, strict=True):
                assert item.encode() == data, where
                if data == b"HANGUP\n":
                    assert isinstance(item, AGIHangup)
            assert _agi_in(records) == items, where
        else:
            lines = _agi_out([b"".join(records)])
            assert [f"{line}\n".encode() for line in lines] == records, where
            assert _agi_out(records) == lines, where


@needs_traces
@pytest.mark.parametrize("name", _fastagi_files(chunks=True))
def test_raw_tcp_reads_give_the_same_items_as_the_message_file(name: str) -> None:
    reads = _streams(FASTAGI / name)
    messages = _streams(FASTAGI / name.replace(".chunks.jsonl", ".jsonl"))
    assert reads.keys() == messages.keys()
    for key, chunks in reads.items():
        if key[1] == "in":
            assert _agi_in(chunks) == _agi_in(messages[key])
        else:
            assert _agi_out(chunks) == _agi_out(messages[key])


@needs_traces
def test_environment_block_fields() -> None:
    env = next(i for n, i in _all_items() if n.startswith("f01") and isinstance(i, AGIEnvironment))
    assert env.channel == "PJSIP/sipp-00000000"
    assert env.uniqueid == "1795343884.0"
    assert env.callerid == "sipp"
    assert env.calleridname == "Caller 1"
    assert env.dnid == env.extension == "601"
    assert env.context == "from-callers"
    assert env.language == "en"
    assert env.accountcode == ""
    assert env.request == "agi://127.0.0.1:4574/inbound?lang=en"
    assert env.network_script == "inbound?lang=en"
    assert env.script_path == "inbound"
    assert env.script_params == {"lang": "en"}
    assert env.args == ("arg1", "arg2")
    assert env.variables["agi_arg_2"] == "arg2"
    assert next(iter(env.variables)) == "agi_network"
    assert not env.is_async


@needs_traces
def test_unicode_caller_name_arguments_and_values_are_intact() -> None:
    env = next(i for n, i in _all_items() if n.startswith("f08") and isinstance(i, AGIEnvironment))
    assert env.calleridname == "José Müller"
    assert env.args == ("José Müller", "Grüße")
    assert env.script_path == "unicode"
    assert env.script_params == {"name": "José Müller"}
    assert "Jos\xc3\xa9".encode("latin-1").decode() in env.encode().decode()
    values = [r.value for r in _results_of("f08_h_unicode_callerid.jsonl")]
    assert "José Müller" in values
    assert "Grüße aus Köln" in values


@needs_traces
def test_result_shapes_seen_in_the_traces() -> None:
    f01 = _results_of("f01_a_basic.jsonl")
    assert [r.value for r in f01[:4]] == [None, None, None, "hello world"]
    assert f01[4].value == '"Caller 1" <sipp>'
    assert f01[5].int_result == 0
    assert f01[5].data == {"endpos": "3404"}

    f02 = {r.text: r for r in _results_of("f02_b_dtmf_rfc2833.jsonl")}
    timeout = f02["200 result= (timeout)\n"]
    assert (timeout.result, timeout.value, timeout.int_result) == ("", "timeout", None)
    assert f02["200 result=123\n"].int_result == 123
    assert f02["200 result=52\n"].int_result == ord("4")
    digit = f02["200 result=53 endpos=24160\n"]
    assert (digit.int_result, digit.data) == (ord("5"), {"endpos": "24160"})

    f03 = [r.value for r in _results_of("f03_c_exec_dial_agent.jsonl")]
    assert "PJSIP/agent3-00000003 16" in f03
    assert "ANSWER" in f03
    assert any(r.int_result == -1 for r in _results_of("f03_c_exec_dial_agent.jsonl"))

    f04 = _results_of("f04_d_caller_hangup_during_stream.jsonl")
    assert f04[0].int_result == -1 and f04[0].data == {"endpos": "20160"}
    dead = next(r for r in f04 if r.code == 511)
    assert not dead.ok
    assert dead.message == TEXT_511

    f05 = _results_of("f05_e_errors_510_520.jsonl")
    assert f05[0].code == 510 and f05[0].message == TEXT_510
    usage = [r for r in f05 if r.code == 520]
    assert len(usage) == 6
    for r in usage:
        assert r.message == TEXT_520_FOLLOWS
        assert r.text.endswith("520 End of proper usage.\n")
        assert r.usage and "520" not in r.usage.split("\n")[0][:4]
    assert "Example return code: 200 result=1 (testvariable)" in usage[3].usage
    assert any(r.int_result == -2 for r in f05)
    assert any(r.int_result == -1 and r.data == {"endpos": "0"} for r in f05)


@needs_traces
def test_encoders_reproduce_every_response_asterisk_sent() -> None:
    """What the demo PBX writes with encode_result/encode_usage_error is what Asterisk wrote."""
    seen = 0
    for _, item in _all_items():
        if not isinstance(item, AGIResult):
            continue
        seen += 1
        data = item.encode()
        if item.code == 200:
            assert encode_result(200, item.result, value=item.value, data=item.data) == data
        elif data.startswith(b"520-"):
            assert encode_usage_error(item.usage) == data
        else:
            assert encode_result(item.code) == data
    assert seen > 400


@needs_traces
def test_hangup_notices_are_items_of_their_own() -> None:
    f04 = [i for n, i in _all_items() if n.startswith("f04")]
    assert isinstance(f04[1], AGIResult) and f04[1].int_result == -1
    assert isinstance(f04[2], AGIHangup)
    assert sum(isinstance(i, AGIHangup) for i in f04) == 2


@needs_traces
def test_trace_commands_split_like_asterisk_and_reformat_to_the_same_words() -> None:
    lines = [
        line
        for name in _fastagi_files(chunks=False)
        for (_, direction), records in _streams(FASTAGI / name).items()
        if direction == "out"
        for line in _agi_out(records)
    ]
    assert 'SET VARIABLE MYVAR "hello world"' in lines
    assert split_command('SET VARIABLE MYVAR "hello world"') == [
        "SET",
        "VARIABLE",
        "MYVAR",
        "hello world",
    ]
    assert split_command('STREAM FILE beep ""') == ["STREAM", "FILE", "beep", ""]
    assert split_command("NOOP\r") == ["NOOP\r"]  # f11: Asterisk answers 510
    assert split_command("") == []
    exact = 0
    for line in lines:
        words = split_command(line)
        if not words or line.endswith("\r"):  # f11 sent these on purpose; we never do
            continue
        formatted = format_command(words[0], *words[1:])
        assert split_command(formatted) == words
        exact += formatted == line
    assert exact > len(lines) * 0.9  # most lines are byte-identical too


# ---------------------------------------------------------------------------------------------
# AsyncAGI fields inside AMI events


def _ami_trace_messages() -> Iterator[AMIMessage]:
    files = [p for p in ASTERISK.glob("*.jsonl*") if ".chunks." not in p.name]
    files += [FASTAGI / "f00_ami_side.jsonl", FASTAGI / "f07_g_server_closes_midcall.ami.jsonl"]
    for path in sorted(files):
        for (_, direction), records in _streams(path).items():
            if direction == "in":
                parser = AMIParser()
                for chunk in records:
                    for msg in parser.feed(chunk):
                        if isinstance(msg, AMIMessage):
                            yield msg


@needs_traces
def test_async_agi_env_and_result_fields_decode_and_reencode_byte_identically() -> None:
    envs = results = 0
    for msg in _ami_trace_messages():
        if msg.name == "AsyncAGIStart":
            field = msg["Env"]
            env = AGIEnvironment.parse(decode_agi_field(field))
            assert env.is_async
            assert env.channel == msg["Channel"]
            assert env.uniqueid == msg["Uniqueid"]
            assert encode_agi_field(env.to_text()) == field
            envs += 1
        elif msg.name == "AsyncAGIExec":
            field = msg["Result"]
            result = parse_result(decode_agi_field(field))
            assert result.ok
            assert encode_agi_field(result.text) == field
            assert encode_agi_field(decode_agi_field(field)) == field
            results += 1
    assert envs > 100
    assert results > 900


def test_agi_field_encoding_matches_asterisk() -> None:
    assert encode_agi_field("200 result=0\n") == "200%20result%3D0%0A"
    assert encode_agi_field("200 result=1 (sipp)\n") == "200%20result%3D1%20(sipp)%0A"
    assert encode_agi_field("José/日本 ~*!'") == "Jos%C3%A9%2F%E6%97%A5%E6%9C%AC%20~*!'"
    assert decode_agi_field("Jos%C3%A9+%ZZ%C3") == "José+%ZZ\ufffd"


# ---------------------------------------------------------------------------------------------
# Environment and results in code


def test_environment_built_with_args_encodes_like_asterisk() -> None:
    env = AGIEnvironment({"agi_network": "yes", "agi_accountcode": ""}, ("a b", ""))
    assert env.encode() == (b"agi_network: yes\nagi_accountcode: \nagi_arg_1: a b\nagi_arg_2: \n\n")
    assert AGIEnvironment.parse(env.to_text()) == env
    assert env.network_script == env.script_path == ""
    assert env.script_params == {}
    with pytest.raises(AGIProtocolError):
        AGIEnvironment({"agi_arg_1": "x"}, ("y",))
    with pytest.raises(AGIProtocolError):
        AGIEnvironment({"agi_channel": "a\nagi_arg_1: injected"}).encode()


@pytest.mark.parametrize(
    "text",
    [
        "GET / HTTP/1.1\nHost: x\n\n",
        "agi_channel: x\nagi_channel: y\n\n",
        "agi_channel: x\n\nagi_more: y\n",
        "channel: x\n\n",
    ],
)
def test_malformed_environment_blocks_are_refused(text: str) -> None:
    with pytest.raises(AGIProtocolError):
        AGIEnvironment.parse(text)
    with pytest.raises(AGIProtocolError):
        FastAGIParser().feed(text.encode())


def test_get_variable_values_with_parentheses_and_key_value_text() -> None:
    text = "200 result=1 (a) b=c (d)\n"
    assert parse_result(text).value == "a) b=c (d"
    tricky = "200 result=1 (x) endpos=5)\n"
    assert parse_result(tricky, command="GET VARIABLE V").value == "x) endpos=5"
    assert parse_result(tricky, command="STREAM FILE x").value == "x"
    assert parse_result(tricky).for_command("get full variable ${V}").value == "x) endpos=5"
    assert parse_result("200 result=1 ((nested))\n").value == "(nested)"
    assert parse_result("200 result=1 (unterminated\n").value == "unterminated"


def test_result_shapes_from_the_asterisk_source() -> None:
    r = parse_result("200 result=49 (dtmf) endpos=8000\n")
    assert (r.int_result, r.value, r.data) == (49, "dtmf", {"endpos": "8000"})
    r = parse_result("200 result=1 (digit) digit=5 endpos=100\n")
    assert r.data == {"digit": "5", "endpos": "100"}
    r = parse_result(
        '200 result=1 (speech) endpos=5 results=1 score0=900 text0="hi (x)" grammar0=g'
    )
    assert r.value == "speech"
    assert r.data["text0"] == "hi (x)"
    assert r.data["grammar0"] == "g"
    r = parse_result("520 Invalid command syntax.  Proper usage not available.\n")
    assert (r.code, r.usage) == (520, "")
    assert encode_result(520) == r.encode()
    r = parse_result("200 result=12 (timeout)\n")
    assert (r.result, r.value) == ("12", "timeout")


@pytest.mark.parametrize("line", ["HELLO", "20 result=1", "200result=1", "200 foo", "²00 x", ""])
def test_lines_that_are_not_agi_responses_are_refused(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_result(line + "\n")


def test_encode_result_formats() -> None:
    assert encode_result(200, "1", value="sipp") == b"200 result=1 (sipp)\n"
    assert encode_result(200, "0", data={"endpos": "3404"}) == b"200 result=0 endpos=3404\n"
    assert encode_result(200, "", value="timeout") == b"200 result= (timeout)\n"
    assert encode_result(510) == b"510 Invalid or unknown command\n"
    assert encode_result(511) == (
        b"511 Command Not Permitted on a dead channel or intercept routine\n"
    )
    assert encode_result(599, message="Custom") == b"599 Custom\n"
    assert AGIHangup().encode() == HANGUP_NOTICE == b"HANGUP\n"
    for bad in (
        lambda: encode_result(200, "1", value="a\nHANGUP"),
        lambda: encode_result(510, "1"),
        lambda: encode_result(599),
        lambda: encode_result(2000, message="x"),
        lambda: encode_usage_error("fine\n520 early end"),
    ):
        with pytest.raises(AGIProtocolError):
            bad()


# ---------------------------------------------------------------------------------------------
# Commands


def test_format_command_quotes_like_asterisk_expects() -> None:
    assert format_command("ANSWER") == "ANSWER"
    assert format_command("STREAM FILE", "beep", "") == 'STREAM FILE beep ""'
    assert format_command("SET VARIABLE", "X", 'say "hi" \\o/') == (
        'SET VARIABLE X "say \\"hi\\" \\\\o/"'
    )
    assert format_command("EXEC", "Dial", "PJSIP/agent3,20") == "EXEC Dial PJSIP/agent3,20"
    assert encode_command("VERBOSE", "Anruf von José", "1") == (
        'VERBOSE "Anruf von José" 1\n'.encode()
    )


@pytest.mark.parametrize(
    ("verb", "args"),
    [
        ("NOOP", ("x\nHANGUP",)),
        ("NOOP", ("x\r",)),
        ("NOOP", ("x\0y",)),
        ("NOOP\n", ()),
        ("", ()),
        ('SAY "X"', ()),
        ("GET  VARIABLE", ()),
        ("NOOP", ("a" * MAX_COMMAND_BYTES,)),
        ("NOOP", ("é" * 4100,)),
        ("NOOP", ("x",) * 127),
        ("NOOP", ("\udce9",)),
    ],
)
def test_command_injection_and_oversized_commands_are_refused(
    verb: str, args: tuple[str, ...]
) -> None:
    with pytest.raises(AGIProtocolError):
        encode_command(verb, *args)


def test_split_command_follows_asterisk_parse_args() -> None:
    assert split_command('a"b c"d') == ["ab cd"]
    assert split_command('"ab"cd e') == ["abcd", "e"]
    assert split_command('\\"x\\\\ y\\ z \\n') == ['"x\\', "y z", "n"]
    assert split_command("a\t\tb  c") == ["a", "b", "c"]
    assert split_command('"" ""') == ["", ""]
    assert split_command("trailing\\") == ["trailing"]
    assert split_command("a\0b c") == ["a"]
    assert split_command(" ".join(str(i) for i in range(200))) == [str(i) for i in range(127)]


def test_command_parser_keeps_carriage_returns_and_empty_lines() -> None:
    parser = AGICommandParser()
    assert parser.feed(b"NOOP\r\nGET VARIABLE A\r\n\nget var") == [
        "NOOP\r",
        "GET VARIABLE A\r",
        "",
    ]
    assert parser.feed(b"iable A\n") == ["get variable A"]
    with pytest.raises(AGIProtocolError):
        parser.feed(b"x" * (MAX_COMMAND_BYTES + 1))
    with pytest.raises(AGIProtocolError):
        parser.feed(b"\n")


def test_fastagi_parser_refuses_endless_lines_and_garbage() -> None:
    parser = FastAGIParser(max_line=100)
    parser.feed(b"agi_network: yes\n\n")
    with pytest.raises(AGIProtocolError):
        parser.feed(b"200 result=1 (" + b"x" * 200)
    with pytest.raises(AGIProtocolError):
        parser.feed(b")\n")
    parser = FastAGIParser()
    assert parser.feed(b"agi_network: yes\n\n200 result=0\nHANGUP\n") == [
        AGIEnvironment({"agi_network": "yes"}),
        AGIResult(200, "0", text="200 result=0\n"),
        AGIHangup(),
    ]
    with pytest.raises(AGIProtocolError):
        parser.feed(b"hello\n")


def test_fastagi_parser_reports_an_unfinished_block_at_eof() -> None:
    parser = FastAGIParser()
    assert parser.feed(b"agi_network: yes\n\n520-Invalid command syntax.  Pro") == [
        AGIEnvironment({"agi_network": "yes"})
    ]
    assert parser.feed(b"per usage follows:\nusage text\n") == []
    assert parser.eof() == b"520-Invalid command syntax.  Proper usage follows:\nusage text\n"
    assert FastAGIParser().environment_done is False


def test_invalid_utf8_in_a_result_is_replaced_not_fatal() -> None:
    parser = FastAGIParser()
    parser.feed(b"agi_calleridname: Jos\xe9\n\n")
    (result,) = parser.feed(b"200 result=1 (M\xfcller)\n")
    assert isinstance(result, AGIResult)
    assert result.value == "M\ufffdller"


# ---------------------------------------------------------------------------------------------
# Properties

F08_ENV = (
    "agi_network: yes\nagi_network_script: unicode?name=Jos%C3%A9%20M%C3%BCller\n"
    "agi_request: agi://127.0.0.1:4574/unicode?name=Jos%C3%A9%20M%C3%BCller\n"
    "agi_channel: PJSIP/sipp-00000009\nagi_calleridname: José Müller\nagi_accountcode: \n"
    "agi_arg_1: José Müller\nagi_arg_2: Grüße\n\n"
)
USAGE_520 = (
    "520-Invalid command syntax.  Proper usage follows:\n"
    "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set.\n"
    "Example return code: 200 result=1 (testvariable)\n"
    "520 End of proper usage.\n"
)
AGI_IN_STREAM = (
    F08_ENV
    + "200 result=1 (José Müller)\n200 result= (timeout)\n"
    + USAGE_520
    + "510 Invalid or unknown command\n200 result=1 (Grüße aus Köln)\n"
    + "200 result=-1 endpos=20160\nHANGUP\n"
    + "511 Command Not Permitted on a dead channel or intercept routine\nHANGUP\n"
).encode()
AGI_OUT_STREAM = (
    'GET VARIABLE CALLERID(name)\nSET VARIABLE GREETING "Grüße aus Köln"\n'
    'VERBOSE "Anruf von José Müller" 1\nNOOP\r\n\nget variable A\nHANGUP\n'
).encode()


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, len(AGI_IN_STREAM)), max_size=40))
def test_any_chunking_of_a_fastagi_stream_gives_the_same_items(cuts: list[int]) -> None:
    expected = _agi_in([AGI_IN_STREAM])
    assert len(expected) == 10
    assert isinstance(expected[0], AGIEnvironment)
    assert expected[0].calleridname == "José Müller"
    assert _agi_in(_cut(AGI_IN_STREAM, cuts)) == expected
    assert b"".join(i.encode() for i in expected) == AGI_IN_STREAM


def test_every_single_byte_split_of_a_fastagi_stream_gives_the_same_items() -> None:
    expected = _agi_in([AGI_IN_STREAM])
    for cut in range(1, len(AGI_IN_STREAM)):
        assert _agi_in([AGI_IN_STREAM[:cut], AGI_IN_STREAM[cut:]]) == expected
    assert _agi_in([AGI_IN_STREAM[i : i + 1] for i in range(len(AGI_IN_STREAM))]) == expected


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(AGI_OUT_STREAM)), max_size=30))
def test_any_chunking_of_a_command_stream_gives_the_same_lines(cuts: list[int]) -> None:
    expected = _agi_out([AGI_OUT_STREAM])
    assert expected[1] == 'SET VARIABLE GREETING "Grüße aus Köln"'
    assert _agi_out(_cut(AGI_OUT_STREAM, cuts)) == expected


_arg_text = st.text(
    st.characters(blacklist_characters="\r\n\0", blacklist_categories=["Cs"]), max_size=30
)
_quoting_heavy = st.lists(st.sampled_from(['"', "\\", " ", "\t", "a", "é", "日", "(", ")"])).map(
    "".join
)


@settings(max_examples=400, deadline=None)
@given(
    verb=st.sampled_from(["NOOP", "SET VARIABLE", "STREAM FILE", "GET FULL VARIABLE", "EXEC"]),
    args=st.lists(_arg_text | _quoting_heavy, max_size=12),
)
def test_split_command_inverts_format_command(verb: str, args: list[str]) -> None:
    line = format_command(verb, *args)
    assert "\n" not in line
    assert split_command(line) == [*verb.split(" "), *args]
    (parsed,) = AGICommandParser().feed(encode_command(verb, *args))
    assert parsed == line


@settings(max_examples=300, deadline=None)
@given(line=st.text(st.sampled_from('ab "\\\t\rx'), max_size=40))
def test_fast_split_path_agrees_with_the_parse_args_transcription(line: str) -> None:
    assert split_command(line) == _parse_args(line)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=400)
    | st.lists(
        st.sampled_from(
            [
                *(b"agi_x: y", b"\n", b"\r", b"200 result=", b"520-", b"520 ", b"HANGUP"),
                *(b"(", b")", b"\xc3", b"\xa9", b"=", b" "),
            ]
        ),
        max_size=40,
    ).map(b"".join),
    split=st.integers(0, 400),
)
def test_random_bytes_only_ever_raise_protocol_errors(raw: bytes, split: int) -> None:
    for parser in (FastAGIParser(max_line=120, max_block=300), AGICommandParser(max_line=120)):
        try:
            parser.feed(raw[:split])
            parser.feed(raw[split:])
            parser.eof()
        except ProtocolError:
            pass
    for text in (raw.decode("utf-8", "replace"), raw.decode("latin-1")):
        with contextlib.suppress(ProtocolError):
            parse_result(text)
        split_command(text)
