"""MQTT 3.1.1 codec, sans-I/O: the packets a publisher sends, and the broker's answers.

The daemon only publishes (live figures for wallboards, see :mod:`callcenter.live.mqtt`), so
this covers the client's side of that conversation and no more:

* ``encode_connect``, ``encode_publish``, :data:`PINGREQ`, :data:`DISCONNECT` build what the
  daemon sends, byte for byte as the OASIS MQTT 3.1.1 standard lays them out;
* :class:`MQTTParser` frames what a broker sends into :class:`Packet` values (any packet
  type: fixed header, remaining length, body), and :func:`connack` / :func:`packet_id` read
  the two a publisher needs (CONNACK, PUBACK). A decoder for PUBLISH (:func:`publish`) serves
  the tests' own subscriber side and nothing in the daemon.

Wire facts: byte 1 is the packet type (high nibble) and flags (low nibble); the remaining
length follows as 1 to 4 bytes of 7 bits each, least significant first, bit 8 meaning "more".
Strings are a 2-byte big-endian length and UTF-8 bytes. A PUBLISH payload is the rest of the
packet, with no length of its own.

Errors: bytes that cannot be framed raise :class:`~callcenter.errors.MQTTProtocolError`, and so
do encoders asked for something the standard forbids (a wildcard in a topic name, a string
over 65,535 bytes, a QoS other than 0, 1, 2).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from callcenter.errors import MQTTProtocolError

__all__ = [
    "CONNACK_REASONS",
    "DISCONNECT",
    "MAX_REMAINING_LENGTH",
    "PINGREQ",
    "PINGRESP",
    "MQTTParser",
    "Packet",
    "PacketType",
    "Publish",
    "check_topic",
    "connack",
    "encode_connect",
    "encode_publish",
    "encode_remaining_length",
    "encode_subscribe",
    "encode_unsubscribe",
    "packet_id",
    "publish",
]


class PacketType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length four bytes can say."""

CONNACK_REASONS = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
"""CONNACK return codes, in the standard's words."""

PINGREQ = bytes((PacketType.PINGREQ << 4, 0))
PINGRESP = bytes((PacketType.PINGRESP << 4, 0))
DISCONNECT = bytes((PacketType.DISCONNECT << 4, 0))


@dataclass(frozen=True, slots=True)
class Packet:
    """One framed packet: its type, the fixed header's flags nibble, and the body after the
    remaining length."""

    type: PacketType
    flags: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """A decoded PUBLISH."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None = None


def encode_remaining_length(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise MQTTProtocolError(f"packet too long for MQTT: {n} bytes")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(text: str | bytes, what: str) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise MQTTProtocolError(f"{what} is {len(data)} bytes; MQTT allows 65535")
    return struct.pack("!H", len(data)) + data


def _packet(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes(((kind << 4) | flags,)) + encode_remaining_length(len(body)) + body


def check_topic(topic: str) -> None:
    """Raise MQTTProtocolError unless ``topic`` may be published to (non-empty, no ``+``,
    ``#`` or NUL)."""
    if not topic:
        raise MQTTProtocolError("a topic name must not be empty")
    for bad in ("+", "#", "\0"):
        if bad in topic:
            raise MQTTProtocolError(f"a topic name must not contain {bad!r}: {topic!r}")


def encode_connect(
    client_id: str,
    *,
    keepalive: int,
    clean_session: bool = True,
    username: str | None = None,
    password: str | None = None,
    will_topic: str | None = None,
    will_payload: bytes = b"",
    will_retain: bool = False,
    will_qos: int = 0,
) -> bytes:
    """A CONNECT packet (protocol level 4, MQTT 3.1.1). ``keepalive`` is in seconds (0: off)."""
    if not 0 <= keepalive <= 0xFFFF:
        raise MQTTProtocolError(f"keepalive {keepalive} is outside 0..65535")
    if password is not None and username is None:
        raise MQTTProtocolError("MQTT 3.1.1 sends a password only with a user name")
    flags = 0x02 if clean_session else 0
    payload = _string(client_id, "client id")
    if will_topic is not None:
        check_topic(will_topic)
        _check_qos(will_qos)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _string(will_topic, "will topic") + _string(will_payload, "will message")
    if username is not None:
        flags |= 0x80
        payload += _string(username, "user name")
    if password is not None:
        flags |= 0x40
        payload += _string(password, "password")
    header = _string("MQTT", "protocol name") + bytes((4, flags)) + struct.pack("!H", keepalive)
    return _packet(PacketType.CONNECT, 0, header + payload)


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise MQTTProtocolError(f"QoS must be 0, 1 or 2, not {qos}")


def encode_publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    retain: bool = False,
    packet_id: int | None = None,
    dup: bool = False,
) -> bytes:
    """A PUBLISH packet; ``packet_id`` (1..65535) is required for QoS 1 and 2."""
    check_topic(topic)
    _check_qos(qos)
    body = _string(topic, "topic name")
    if qos:
        if packet_id is None or not 1 <= packet_id <= 0xFFFF:
            raise MQTTProtocolError(f"QoS {qos} needs a packet id 1..65535, not {packet_id}")
        body += struct.pack("!H", packet_id)
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return _packet(PacketType.PUBLISH, flags, body + payload)


def encode_subscribe(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE packet (topic filters with their QoS); flags are 0b0010 by the standard."""
    if not topics:
        raise MQTTProtocolError("SUBSCRIBE needs at least one topic filter")
    body = struct.pack("!H", packet_id)
    for topic, qos in topics:
        _check_qos(qos)
        body += _string(topic, "topic filter") + bytes((qos,))
    return _packet(PacketType.SUBSCRIBE, 0x02, body)


def encode_unsubscribe(packet_id: int, topics: list[str]) -> bytes:
    """An UNSUBSCRIBE packet; flags are 0b0010 by the standard."""
    if not topics:
        raise MQTTProtocolError("UNSUBSCRIBE needs at least one topic filter")
    body = struct.pack("!H", packet_id)
    for topic in topics:
        body += _string(topic, "topic filter")
    return _packet(PacketType.UNSUBSCRIBE, 0x02, body)


def connack(packet: Packet) -> tuple[bool, int]:
    """``(session_present, return_code)`` of a CONNACK."""
    if packet.type is not PacketType.CONNACK or len(packet.body) != 2:
        raise MQTTProtocolError(f"not a CONNACK: {packet}")
    return bool(packet.body[0] & 1), packet.body[1]


def packet_id(packet: Packet) -> int:
    """The packet id of a PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK."""
    if len(packet.body) < 2:
        raise MQTTProtocolError(f"{packet.type.name} without a packet id")
    return int(struct.unpack_from("!H", packet.body)[0])


def publish(packet: Packet) -> Publish:
    """Decode a PUBLISH packet."""
    if packet.type is not PacketType.PUBLISH:
        raise MQTTProtocolError(f"not a PUBLISH: {packet.type.name}")
    qos = (packet.flags >> 1) & 3
    _check_qos(qos)
    body = packet.body
    if len(body) < 2:
        raise MQTTProtocolError("PUBLISH without a topic name")
    (size,) = struct.unpack_from("!H", body)
    end = 2 + size
    if len(body) < end:
        raise MQTTProtocolError("PUBLISH topic name runs past the packet")
    try:
        topic = body[2:end].decode()
    except UnicodeDecodeError as exc:
        raise MQTTProtocolError(f"PUBLISH topic name is not UTF-8: {exc}") from None
    ident = None
    if qos:
        if len(body) < end + 2:
            raise MQTTProtocolError("PUBLISH with QoS > 0 and no packet id")
        (ident,) = struct.unpack_from("!H", body, end)
        end += 2
    return Publish(topic, body[end:], qos, bool(packet.flags & 1), ident)


class MQTTParser:
    """Frames a byte stream from the peer into packets; ``feed`` returns the packets that
    completed. Any split of the stream gives the same packets.

    ``max_packet`` bounds the remaining length accepted: a broker answering a publisher
    sends a few bytes at a time, so anything near the bound means the stream is not MQTT.
    """

    def __init__(self, max_packet: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data``; return every packet now complete, in order."""
        buffer = self._buffer
        buffer += data
        out: list[Packet] = []
        start = 0
        while len(buffer) - start >= 2:
            first = buffer[start]
            kind = first >> 4
            if kind in {0, 15}:
                raise MQTTProtocolError(f"reserved packet type {kind} (byte {first:#04x})")
            length, shift, at = 0, 0, start + 1
            while True:
                if at >= len(buffer):
                    length = -1
                    break
                byte = buffer[at]
                length |= (byte & 0x7F) << shift
                at += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MQTTProtocolError("remaining length longer than 4 bytes")
            if length < 0:
                break
            if length > self._max:
                raise MQTTProtocolError(
                    f"a {PacketType(kind).name} of {length} bytes (more than {self._max})"
                )
            if len(buffer) - at < length:
                break
            out.append(Packet(PacketType(kind), first & 0x0F, bytes(buffer[at : at + length])))
            start = at + length
        if start:
            del buffer[:start]
        return out
