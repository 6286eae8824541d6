"""The SIP codec of the demo PBX's SIP side (:mod:`callcenter.protocols.sip`): messages as
SIPp sends them, compact header names, folded lines, bodies cut at Content-Length, the
UAS's answers, DTMF in INFO bodies, and every malformed datagram refused with a clear
error (property tests for the round trip and for arbitrary bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import SIPProtocolError
from callcenter.protocols.sip import (
    Dialog,
    SIPMessage,
    contact_uri,
    display_name,
    dtmf_of,
    parse,
    request,
    response,
    tag_of,
    uri_user,
)

# An INVITE as SIPp's uac_dtmf_info.xml (shared/traces/asterisk/config/sipp) sends it.
INVITE = (
    b"INVITE sip:800@127.0.0.1:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-11639-1-0\r\n"
    b'From: "Caller 1" <sip:sipp@127.0.0.1:5061>;tag=11639SIPpTag001\r\n'
    b"To: <sip:800@127.0.0.1:5070>\r\n"
    b"Call-ID: 1-11639@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:sipp@127.0.0.1:5061>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: pbxlab\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length:   122\r\n"
    b"\r\n"
    b"v=0\r\no=sipp 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=sendrecv\r\n"
)


def test_sipps_invite_reads_as_the_call_it_places() -> None:
    invite = parse(INVITE)
    assert (invite.method, invite.uri, invite.is_request) == (
        "INVITE",
        "sip:800@127.0.0.1:5070",
        True,
    )
    assert invite.cseq == (1, "INVITE") and invite.call_id == "1-11639@127.0.0.1"
    assert uri_user(invite.uri) == "800" and uri_user(invite.get("from")) == "sipp"
    assert display_name(invite.get("From")) == "Caller 1"
    assert tag_of(invite.get("From")) == "11639SIPpTag001" and tag_of(invite.get("To")) == ""
    assert contact_uri(invite.get("m")) == "sip:sipp@127.0.0.1:5061"
    assert invite.body.startswith(b"v=0") and len(invite.body) == 122


def test_the_answer_copies_via_from_call_id_and_cseq_and_tags_to() -> None:
    invite = parse(INVITE)
    ok = parse(response(invite, 200, "OK", to_tag="abc", body=b"v=0\r\n").encode())
    assert (ok.status, ok.reason, ok.is_request) == (200, "OK", False)
    assert ok.get("Via") == invite.get("Via") and ok.get("From") == invite.get("From")
    assert ok.get("To") == "<sip:800@127.0.0.1:5070>;tag=abc"
    assert (ok.call_id, ok.get("CSeq"), ok.get("Content-Length")) == (
        invite.call_id,
        "1 INVITE",
        "5",
    )
    again = response(parse(ok.encode()), 200, "OK", to_tag="xyz")
    assert again.get("To").count("tag=") == 1, "a To with a tag keeps it"


def test_a_bye_of_ours_follows_the_dialog() -> None:
    dialog = Dialog("c1", "<sip:800@pbx>;tag=ours", '"A" <sip:a@h>;tag=theirs', "sip:a@h:5061")
    bye = request("BYE", dialog, via="SIP/2.0/UDP pbx:5070;branch=z9hG4bK1")
    second = request("BYE", dialog, via="SIP/2.0/UDP pbx:5070;branch=z9hG4bK2")
    assert (bye.method, bye.uri, bye.get("From"), bye.get("To")) == (
        "BYE",
        "sip:a@h:5061",
        "<sip:800@pbx>;tag=ours",
        '"A" <sip:a@h>;tag=theirs',
    )
    assert (bye.get("CSeq"), second.get("CSeq")) == ("1 BYE", "2 BYE")


def test_compact_names_folded_lines_and_a_body_past_its_length() -> None:
    message = parse(
        b"BYE sip:x@h SIP/2.0\r\ni: c9\r\nf: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\n"
        b"Subject: a long\r\n  subject\r\nCSeq: 7 BYE\r\nl: 2\r\n\r\nokEXTRA"
    )
    assert (message.call_id, message.get("From"), message.get("Subject")) == (
        "c9",
        "<sip:a@h>;tag=1",
        "a long subject",
    )
    assert message.body == b"ok"


@pytest.mark.parametrize(
    ("kind", "body", "key"),
    [
        ("application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n", "1"),
        ("application/dtmf-relay", b"Signal= #\r\n", "#"),
        ("application/dtmf-relay", b"Signal=11\r\n", "#"),
        ("application/dtmf-relay", b"Signal=10\r\n", "*"),
        ("application/dtmf", b"7", "7"),
        ("application/dtmf-relay", b"Signal=12\r\n", ""),
        ("text/plain", b"Signal=1", ""),
    ],
)
def test_keys_in_info_bodies(kind: str, body: bytes, key: str) -> None:
    info = SIPMessage(method="INFO", uri="sip:x@h", headers=(("Content-Type", kind),), body=body)
    assert dtmf_of(info) == key


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"INVITE sip:x SIP/2.0\r\nVia: a\r\n", "no empty line"),
        (b"HELLO\r\n\r\n", "bad start line"),
        (b"INVITE sip:x SIP/3.0\r\n\r\n", "bad start line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "bad status line"),
        (b"BYE sip:x SIP/2.0\r\nno colon here\r\n\r\n", "bad header line"),
        (b"BYE sip:x SIP/2.0\r\nContent-Length: 10\r\n\r\nshort", "Content-Length 10"),
        (b"BYE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"BYE sip:x SIP/2.0\r\nFrom: \xff\r\n\r\n", "not UTF-8"),
    ],
)
def test_malformed_datagrams_are_refused_saying_why(data: bytes, said: str) -> None:
    with pytest.raises(SIPProtocolError, match=said):
        parse(data)


def test_a_cseq_that_is_no_cseq_is_refused() -> None:
    with pytest.raises(SIPProtocolError, match="bad CSeq"):
        _ = parse(b"BYE sip:x SIP/2.0\r\nCSeq: one BYE\r\n\r\n").cseq


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20)
_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40
).map(str.strip)


@given(
    st.sampled_from(["INVITE", "BYE", "INFO", "OPTIONS", "CANCEL", "ACK"]),
    _TOKEN,
    st.lists(
        st.tuples(st.sampled_from(["X-Tag", "Subject", "Call-ID", "Via", "From"]), _VALUE),
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_a_message_reads_back_as_written(
    method: str, user: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    sent = SIPMessage(method=method, uri=f"sip:{user}@h", headers=tuple(headers), body=body)
    back = parse(sent.encode())
    assert (back.method, back.uri, back.body) == (method, sent.uri, body)
    assert [(n, v) for n, v in back.headers if n != "Content-Length"] == headers


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_are_refused_with_the_protocol_error(data: bytes) -> None:
    """Nothing else escapes (no IndexError, no UnicodeError); what parses writes back as
    the same message."""
    try:
        message = parse(data)
    except SIPProtocolError:
        return
    again = parse(message.encode())
    assert (again.method, again.uri, again.status, again.body) == (
        message.method,
        message.uri,
        message.status,
        message.body,
    )
