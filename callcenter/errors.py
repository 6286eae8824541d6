"""The one exception tree of callcenter.

Everything the package raises on purpose derives from :class:`CallCenterError`::

    CallCenterError
    ├── ConfigError                 a config file is invalid (carries file:line issues)
    ├── ProtocolError               bytes from a peer that no codec can decode
    │   ├── AMIProtocolError
    │   ├── AGIProtocolError
    │   ├── ESLProtocolError
    │   ├── MQTTProtocolError
    │   └── SIPProtocolError        a SIP datagram the demo PBX's phones' side cannot read
    ├── PBXError                    talking to the PBX went wrong
    │   ├── AuthenticationError     wrong AMI secret / ESL password (exit status 2)
    │   ├── PBXConnectionError      the PBX link is down or was lost mid-request
    │   │   ├── CommandResultLost   a command ended while the link was down: its result is gone
    │   │   └── ReplyLost           a command went out, the link went before its reply
    │   ├── PBXTimeoutError         the PBX did not answer within the deadline
    │   ├── ActionFailed            the PBX answered `Response: Error` / `-ERR ...`
    │   ├── PBXClaimed              another live daemon drives this PBX (exit status 4)
    │   └── CallError               a per-call command failed
    │       ├── CallHungUp          the caller hung up; every pending command fails with it
    │       └── CommandFailed       the command ran and failed (510/511/520, result=-1 ...)
    ├── EngineError
    │   ├── IllegalTransition       a state machine was asked for a move its table forbids
    │   ├── UnknownAgent
    │   ├── InvalidAgent            settings an agent added at run time cannot have
    │   ├── InvalidQueue            settings a queue added at run time cannot have
    │   ├── UnknownQueue
    │   ├── UnknownCallback
    │   ├── UnknownCall             no caller of that id waits in a queue
    │   ├── CallbackSlotFull        the slot asked for has no room (``next_free`` has)
    │   ├── UnknownVoicemail
    │   ├── UnknownNotice
    │   ├── UnknownNumberList
    │   ├── UnknownSupervisor
    │   ├── UnknownLead             a campaign has no lead of that id
    │   ├── NotPermitted            the config does not let this person do that (a team)
    │   └── DestinationNotAllowed   a transfer/dial target that the config does not allow
    ├── ListenError                 an address the daemon must listen on is taken or refused
    ├── BrokerRefused               the MQTT broker refused the daemon's connection
    ├── RecordError                 a record could not be stored (or its database opened)
    └── ErasureRefused              a number to erase is one that work still waits on
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class CallCenterError(Exception):
    """Root of every error callcenter raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, printable as ``file:line: field: message``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(CallCenterError):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ProtocolError(CallCenterError):
    """A peer sent bytes that cannot be decoded."""


class AMIProtocolError(ProtocolError):
    """Malformed AMI traffic."""


class AGIProtocolError(ProtocolError):
    """Malformed AGI traffic (environment block or result line)."""


class ESLProtocolError(ProtocolError):
    """Malformed FreeSWITCH Event Socket traffic."""


class MQTTProtocolError(ProtocolError):
    """An MQTT packet that cannot be framed, or one the standard forbids us to send."""


class SIPProtocolError(ProtocolError):
    """A SIP message (a datagram to the demo PBX's SIP side) that cannot be decoded."""


class PBXError(CallCenterError):
    """Talking to the PBX went wrong."""


class AuthenticationError(PBXError):
    """The PBX refused our credentials."""


class PBXConnectionError(PBXError):
    """The connection to the PBX is down, or was lost while a request was pending."""


class CommandResultLost(PBXConnectionError):
    """A call's command ended while the link it was sent over was down (AsyncAGI): its
    result went with the link. The call is the PBX's again (it waits for commands from
    anyone), and the driver hands it over as a new call: do not hang it up."""


class ReplyLost(PBXConnectionError):
    """A command was written to the PBX and the link went down before its reply: it may
    have reached the PBX and run, or not (one that was never sent raises
    :class:`PBXConnectionError` itself)."""


class PBXTimeoutError(PBXError):
    """The PBX did not answer within the deadline."""


class ActionFailed(PBXError):
    """The PBX answered a request with an error; ``response`` holds what it said."""

    def __init__(self, message: str, response: object | None = None) -> None:
        super().__init__(message)
        self.response = response


class PBXClaimed(PBXError):
    """Another daemon's claim on the PBX is fresh (see :mod:`callcenter.pbx.claim`);
    ``mark`` is what it wrote."""

    def __init__(self, message: str, mark: object | None = None) -> None:
        super().__init__(message)
        self.mark = mark


class CallError(PBXError):
    """A command on one call failed."""


class CallHungUp(CallError):
    """The call was hung up; raised by every command pending or issued afterwards."""


class CommandFailed(CallError):
    """A call command ran and failed (AGI 510/511/520, result=-1, -ERR ...)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class EngineError(CallCenterError):
    """The call-centre engine was asked for something it cannot do."""


class IllegalTransition(EngineError):
    """A state machine was asked for a transition its table does not allow."""


class UnknownAgent(EngineError):
    """No agent with that id is configured."""


class InvalidAgent(EngineError):
    """An agent added or changed while the centre runs (``agent add``) would have settings
    the config could not hold: every problem as ``field: message``."""


class InvalidQueue(EngineError):
    """A queue added or changed while the centre runs (``queue add``) would have settings
    the config could not hold: every problem as ``field: message``."""


class UnknownQueue(EngineError):
    """No queue with that name is configured."""


class UnknownCall(EngineError):
    """No caller of that call id waits in a queue."""


class UnknownCallback(EngineError):
    """No callback request waits under that id."""


class CallbackSlotFull(EngineError):
    """The slot a callback was asked for takes no more (``queues.<q>.callback_slots``);
    ``next_free`` is the first time after it in a slot with room (None: none within two
    weeks)."""

    def __init__(self, message: str, next_free: datetime | None) -> None:
        super().__init__(message)
        self.next_free = next_free


class UnknownVoicemail(EngineError):
    """No voicemail message of a queue's box has that id."""


class UnknownNotice(EngineError):
    """No notice of that id stands (taken down, or its time is up)."""


class UnknownNumberList(EngineError):
    """No IVR number list of that name is configured (``ivr.number_lists``)."""


class UnknownSupervisor(EngineError):
    """No supervisor of that id in the config."""


class UnknownLead(EngineError):
    """The campaign has no lead of that id (in its file or added while it runs)."""


class NotPermitted(EngineError):
    """The config does not let this person do that (a supervisor monitoring outside their
    teams)."""


class DestinationNotAllowed(EngineError):
    """A transfer or dial target is not on the configured allow-list."""


class ListenError(CallCenterError):
    """A server socket of the daemon (FastAGI, FreeSWITCH outbound, control API) could not
    be bound: the port is in use or the address is not this host's."""


class BrokerRefused(CallCenterError):
    """The MQTT broker answered CONNECT with a refusal (``code``: the CONNACK return code)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the MQTT broker refused the connection: {reason} (code {code})")


class RecordError(CallCenterError):
    """A record could not be stored."""


class ErasureRefused(CallCenterError):
    """A number cannot be erased yet: work still waits on it (``holds``: what, and what to
    do first). Nothing was changed."""

    def __init__(self, holds: list[str]) -> None:
        self.holds = holds
        super().__init__("; ".join(holds))
