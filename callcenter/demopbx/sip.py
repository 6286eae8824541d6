"""The demo PBX's SIP side: real SIP callers (SIPp, a softphone) call into it over UDP.

:class:`SIPFront` listens on a UDP port and answers as a PBX's SIP stack does (RFC 3261,
UAS only, signalling only: no media is sent or read). An ``INVITE sip:<exten>@...`` becomes
a caller of the demo PBX (:meth:`~callcenter.demopbx.DemoAsterisk.call` or the demo
FreeSWITCH's), from the From header's user and display name, running the dialplan into the
daemon. The caller hears ``100 Trying`` at once, ``180 Ringing`` and then ``200 OK`` (with a
minimal SDP) once the dialplan answers; a call that ends before gets a failure status from
its hangup cause (``486 Busy Here`` for 17, ``480`` otherwise). Keys come as ``INFO``
(``application/dtmf-relay``'s ``Signal=`` or ``application/dtmf``), a ``BYE`` or ``CANCEL``
hangs the caller up, and a call the PBX ends (an agent hung up, the IVR said goodbye) is
ended with a ``BYE`` of ours. Retransmitted requests get the last answer again; a
datagram that is no SIP message is logged and dropped. ``OPTIONS`` is answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from callcenter.errors import CallHungUp, SIPProtocolError
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

log = structlog.get_logger(__name__)

LOOK_EVERY: Final = 0.01
"""Seconds between two looks at a call's state (the demo's channels have no callbacks)."""
SDP_TEMPLATE: Final = (
    "v=0\r\no=callcenter 1 1 IN IP4 {host}\r\ns=demo\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
ALLOW: Final = "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS"


class SIPCaller(Protocol):
    """What the SIP side needs of a demo PBX's caller."""

    @property
    def state(self) -> str: ...

    @property
    def hangup_cause(self) -> int | None: ...

    async def press(self, digits: str) -> None: ...

    async def hangup(self) -> None: ...


Dialer = Callable[[str, str, str], Any]
"""(extension, caller number, caller name) -> awaitable of a :class:`SIPCaller`."""


@dataclass
class _Call:
    invite: SIPMessage
    peer: tuple[str, int]
    tag: str
    dialog: Dialog
    caller: SIPCaller | None = None
    last: bytes = b""
    """The last response to the INVITE (sent again when it is retransmitted)."""
    answered: bool = False
    ended: bool = False
    task: asyncio.Task[None] | None = None
    byes: list[bytes] = field(default_factory=list)


class SIPFront(asyncio.DatagramProtocol):
    """A UDP SIP endpoint in front of a demo PBX (see the module doc)."""

    def __init__(self, dial: Dialer, host: str = "127.0.0.1", port: int = 0) -> None:
        self._dial = dial
        self.host = host
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._calls: dict[str, _Call] = {}
        self._answers: dict[tuple[str, str], bytes] = {}
        """(Call-ID, CSeq) of requests answered in a dialog -> the answer (retransmits)."""
        self._tasks: set[asyncio.Task[None]] = set()
        #: Calls taken since the start, and datagrams dropped as not SIP.
        self.calls_taken = 0
        self.dropped = 0

    async def start(self) -> None:
        """Listen on ``host:port`` (0: any free port; :attr:`port` says which)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        log.info("demopbx_sip_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- datagrams ----------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() == b"":
            return  # a keep-alive (CRLF)
        try:
            message = parse(data)
        except SIPProtocolError as exc:
            self.dropped += 1
            log.warning("demopbx_sip_dropped", peer=f"{addr[0]}:{addr[1]}", error=str(exc))
            return
        try:
            if message.is_request:
                self._on_request(message, addr)
            else:
                self._on_response(message)
        except SIPProtocolError as exc:
            self.dropped += 1
            log.warning("demopbx_sip_dropped", peer=f"{addr[0]}:{addr[1]}", error=str(exc))

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def _answer(
        self, req: SIPMessage, addr: tuple[str, int], status: int, reason: str, **kw: Any
    ) -> bytes:
        data = response(req, status, reason, **kw).encode()
        self._send(data, addr)
        return data

    def _on_request(self, req: SIPMessage, addr: tuple[str, int]) -> None:
        number, method = req.cseq
        key = (req.call_id, f"{number} {method}")
        if method != "ACK" and key in self._answers:
            self._send(self._answers[key], addr)  # a retransmission
            return
        call = self._calls.get(req.call_id)
        if method == "INVITE":
            if call is not None:
                if call.last:
                    self._send(call.last, addr)
                return
            self._invite(req, addr)
        elif method == "ACK":
            return
        elif method == "OPTIONS":
            self._answers[key] = self._answer(req, addr, 200, "OK", headers=[("Allow", ALLOW)])
        elif call is None:
            self._answers[key] = self._answer(
                req, addr, 481, "Call/Transaction Does Not Exist", to_tag=secrets.token_hex(4)
            )
        elif method == "BYE":
            self._answers[key] = self._answer(req, addr, 200, "OK")
            self._caller_left(call)
        elif method == "CANCEL":
            self._answers[key] = self._answer(req, addr, 200, "OK", to_tag=call.tag)
            if not call.answered:
                call.last = self._answer(
                    call.invite, call.peer, 487, "Request Terminated", to_tag=call.tag
                )
            self._caller_left(call)
        elif method == "INFO":
            key_pressed = dtmf_of(req)
            self._answers[key] = self._answer(req, addr, 200, "OK")
            if key_pressed and call.caller is not None:
                self._spawn(self._press(call, key_pressed), f"sip-info-{req.call_id}")
        else:
            self._answers[key] = self._answer(
                req, addr, 405, "Method Not Allowed", headers=[("Allow", ALLOW)]
            )

    def _on_response(self, message: SIPMessage) -> None:
        """The answer to a BYE of ours: nothing more to do (the call is over)."""
        call = self._calls.get(message.call_id)
        if call is not None and message.status >= 200:
            self._forget(call)

    # -- one call -----------------------------------------------------------------------

    def _invite(self, req: SIPMessage, addr: tuple[str, int]) -> None:
        exten = uri_user(req.uri)
        number = uri_user(req.get("From")) or "anonymous"
        tag = secrets.token_hex(4)
        dialog = Dialog(
            call_id=req.call_id,
            local=f"{req.get('To')};tag={tag}",
            remote=req.get("From"),
            remote_target=contact_uri(req.get("Contact")) or f"sip:{number}@{addr[0]}:{addr[1]}",
        )
        call = _Call(req, addr, tag, dialog)
        call.last = self._answer(req, addr, 100, "Trying")
        if not exten or not tag_of(req.get("From")):
            call.last = self._answer(req, addr, 400, "Bad Request", to_tag=tag)
            return
        self._calls[req.call_id] = call
        self.calls_taken += 1
        log.info("demopbx_sip_invite", call_id=req.call_id, exten=exten, caller_num=number)
        call.task = self._spawn(
            self._run(call, exten, number, display_name(req.get("From"))), f"sip-{req.call_id}"
        )

    async def _run(self, call: _Call, exten: str, number: str, name: str) -> None:
        req, addr = call.invite, call.peer
        caller: SIPCaller = await self._dial(exten, number, name)
        call.caller = caller
        if call.ended:
            await caller.hangup()  # a CANCEL came while the call was being placed
            return
        call.last = self._answer(req, addr, 180, "Ringing", to_tag=call.tag)
        await _polled(lambda: caller.state != "ringing" or call.ended)
        if call.ended:
            return
        if caller.state == "ended":
            cause = caller.hangup_cause
            status, reason = (486, "Busy Here") if cause == 17 else (480, "Temporarily Unavailable")
            call.last = self._answer(req, addr, status, reason, to_tag=call.tag)
            self._forget(call)
            return
        sdp = SDP_TEMPLATE.format(host=self.host, port=self.port + 2).encode()
        call.answered = True
        call.last = self._answer(
            req,
            addr,
            200,
            "OK",
            to_tag=call.tag,
            headers=[
                ("Contact", f"<sip:{exten}@{self.host}:{self.port}>"),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=sdp,
        )
        await _polled(lambda: caller.state == "ended" or call.ended)
        if call.ended:
            return
        call.ended = True
        via = f"SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)}"
        bye = request("BYE", call.dialog, via=via).encode()
        call.byes.append(bye)
        log.info("demopbx_sip_bye", call_id=call.dialog.call_id)
        self._send(bye, addr)

    async def _press(self, call: _Call, key: str) -> None:
        if call.caller is not None:
            with contextlib.suppress(CallHungUp, ValueError):
                await call.caller.press(key)

    def _caller_left(self, call: _Call) -> None:
        if call.ended:
            return
        call.ended = True
        log.info("demopbx_sip_caller_left", call_id=call.dialog.call_id)
        if call.caller is not None:
            self._spawn(call.caller.hangup(), f"sip-hangup-{call.dialog.call_id}")
        self._forget(call)

    def _forget(self, call: _Call) -> None:
        self._calls.pop(call.dialog.call_id, None)
        if len(self._answers) > 4096:
            self._answers.clear()  # retransmissions are long over for those
        if call.last:
            # A late retransmission of the INVITE gets its answer, not a second call.
            number, method = call.invite.cseq
            self._answers[(call.dialog.call_id, f"{number} {method}")] = call.last

    def _spawn(self, work: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _polled(done: Callable[[], bool]) -> None:
    # The demo's channels of both PBXs have no event to wait on from here.
    while not done():  # noqa: ASYNC110
        await asyncio.sleep(LOOK_EVERY)
