"""The MQTT 3.1.1 codec: the standard's byte layouts, any split of the broker's stream, bad
frames refused, and the packets a real mosquitto accepts and delivers to paho-mqtt."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mqtt_broker import Wallboard, running_broker

from callcenter.errors import MQTTProtocolError, ProtocolError
from callcenter.protocols import mqtt as wire

# The remaining-length table of the standard (section 2.2.3).
LENGTHS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("length", "encoded"), LENGTHS)
def test_remaining_lengths_are_written_as_the_standard_tabulates_them(
    length: int, encoded: bytes
) -> None:
    assert wire.encode_remaining_length(length) == encoded
    parser = wire.MQTTParser(max_packet=wire.MAX_REMAINING_LENGTH)
    header = bytes((wire.PacketType.PUBLISH << 4,)) + encoded
    if length > 16_384:
        assert parser.feed(header) == [], "waits for the body it announced"
        return
    (packet,) = parser.feed(
        header + b"\x00\x01t" + b"x" * (length - 3) if length >= 3 else header + b"\x00" * length
    )
    assert len(packet.body) == length


def test_a_packet_longer_than_four_length_bytes_can_say_is_refused() -> None:
    with pytest.raises(MQTTProtocolError, match="too long"):
        wire.encode_remaining_length(wire.MAX_REMAINING_LENGTH + 1)
    with pytest.raises(MQTTProtocolError, match="longer than 4 bytes"):
        wire.MQTTParser().feed(b"\x30\xff\xff\xff\xff\x01")


def test_connect_is_laid_out_byte_for_byte() -> None:
    assert wire.encode_connect("cc", keepalive=30) == (
        b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02cc"
    )
    full = wire.encode_connect(
        "cc",
        keepalive=60,
        username="u",
        password="p",
        will_topic="cc/status",
        will_payload=b"offline",
        will_retain=True,
        will_qos=1,
    )
    # user name, password, will retain, will QoS 1, will flag, clean session
    assert full[9] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert full.endswith(b"\x00\x02cc\x00\x09cc/status\x00\x07offline\x00\x01u\x00\x01p")


def test_subscribe_and_unsubscribe_carry_the_flags_the_standard_requires() -> None:
    assert wire.encode_subscribe(1, [("a/+", 0)]) == b"\x82\x08\x00\x01\x00\x03a/+\x00"
    assert wire.encode_unsubscribe(2, ["a/+"]) == b"\xa2\x07\x00\x02\x00\x03a/+"
    with pytest.raises(MQTTProtocolError):
        wire.encode_unsubscribe(3, [])


def test_publish_carries_its_flags_and_a_packet_id_only_above_qos_0() -> None:
    assert wire.encode_publish("a/b", b"hi", retain=True) == b"\x31\x07\x00\x03a/bhi"
    assert wire.encode_publish("a/b", b"hi", qos=1, packet_id=10, dup=True) == (
        b"\x3a\x09\x00\x03a/b\x00\x0ahi"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wire.encode_publish("calls/+", b""), "'\\+'"),
        (lambda: wire.encode_publish("calls/#", b""), "'#'"),
        (lambda: wire.encode_publish("", b""), "empty"),
        (lambda: wire.encode_publish("a", b"", qos=1), "packet id"),
        (lambda: wire.encode_publish("a", b"", qos=3), "QoS"),
        (lambda: wire.encode_publish("a" * 65_536, b""), "65535"),
        (lambda: wire.encode_connect("cc", keepalive=30, password="p"), "user name"),
        (lambda: wire.encode_connect("cc", keepalive=70_000), "keepalive"),
    ],
)
def test_what_the_standard_forbids_is_never_sent(call: object, message: str) -> None:
    with pytest.raises(MQTTProtocolError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "reserved packet type 0"),
        (b"\xf0\x00", "reserved packet type 15"),
        (b"\x30\x80\x80\x80\x01", "more than"),
    ],
)
def test_a_stream_that_is_not_mqtt_is_refused_with_a_protocol_error(
    data: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        wire.MQTTParser().feed(data)


def test_the_answers_a_publisher_reads() -> None:
    parser = wire.MQTTParser()
    ack, refused, pong, puback = parser.feed(
        b"\x20\x02\x01\x00" + b"\x20\x02\x00\x05" + wire.PINGRESP + b"\x40\x02\x12\x34"
    )
    assert wire.connack(ack) == (True, 0)
    assert wire.connack(refused) == (False, 5)
    assert wire.CONNACK_REASONS[5] == "not authorized"
    assert pong.type is wire.PacketType.PINGRESP
    assert wire.packet_id(puback) == 0x1234
    with pytest.raises(MQTTProtocolError):
        wire.connack(pong)


topics = st.lists(
    st.text(
        alphabet=st.characters(blacklist_characters="+#\0/", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=4,
).map("/".join)
publishes = st.builds(
    lambda topic, payload, qos, retain, ident: wire.Publish(
        topic, payload, qos, retain, ident if qos else None
    ),
    topics,
    st.binary(max_size=300),
    st.sampled_from([0, 1, 2]),
    st.booleans(),
    st.integers(1, 0xFFFF),
)


@given(st.lists(publishes, min_size=1, max_size=6), st.data())
def test_any_split_of_the_stream_gives_the_same_packets(
    sent: list[wire.Publish], data: st.DataObject
) -> None:
    stream = b"".join(
        wire.encode_publish(p.topic, p.payload, qos=p.qos, retain=p.retain, packet_id=p.packet_id)
        for p in sent
    )
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=12)))
    parser = wire.MQTTParser()
    packets: list[wire.Packet] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        packets += parser.feed(stream[start:cut])
        start = cut
    assert [wire.publish(p) for p in packets] == sent


async def test_a_real_broker_accepts_our_connect_and_delivers_our_publish(
    tmp_path: Path,
) -> None:
    with (
        running_broker(tmp_path, users={"cc": "right"}) as broker,
        Wallboard(broker.port, "cc", auth=("cc", "right")) as board,
    ):

        def session(password: str) -> tuple[int, bytes]:
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
                s.sendall(
                    wire.encode_connect(
                        "codec-test", keepalive=10, username="cc", password=password
                    )
                )
                packets: list[wire.Packet] = []
                parser = wire.MQTTParser()
                while not packets:
                    packets = parser.feed(s.recv(64))
                _, code = wire.connack(packets[0])
                if code == 0:
                    s.sendall(wire.encode_publish("cc/ünïcode", "Zoë".encode(), retain=True))
                    s.sendall(wire.PINGREQ)
                    pong: list[wire.Packet] = []
                    while not pong:
                        pong = parser.feed(s.recv(64))
                    assert pong[0].type is wire.PacketType.PINGRESP
                    s.sendall(wire.DISCONNECT)
                return code, b""

        assert (await asyncio.to_thread(session, "wrong"))[0] in (4, 5)
        assert (await asyncio.to_thread(session, "right"))[0] == 0
        heard = await board.wait_for("ünïcode")
    assert heard.payload.decode() == "Zoë"
