"""The demo FreeSWITCH speaks real ESL over TCP, like FreeSWITCH 1.10 in the traces.

The clients here are independent of the daemon: a raw ESL client (inbound) and a raw
outbound-socket server, both built on the shared codec (callcenter.protocols.esl).
"""

from __future__ import annotations

import asyncio
import json
import uuid as uuidlib
import wave
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.demopbx.freeswitch import FAILOVER_PROMPT, DemoFreeSwitch
from callcenter.demopbx.fs_apps import parse_dialstring
from callcenter.demopbx.fs_channels import ChannelState, EventHub, FSChannel, prompt_name
from callcenter.demopbx.fs_phones import AgentPhone, Caller
from callcenter.errors import CallHungUp, IllegalTransition
from callcenter.protocols.esl import (
    DISCONNECT_GOODBYE,
    ESLEvent,
    ESLMessage,
    ESLParser,
    encode_command,
    encode_sendmsg,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "freeswitch"
PASSWORD = "s3cret"
TIMEOUT = 3.0
FAILOVER_PROMPT_NAME = prompt_name(FAILOVER_PROMPT)


# --------------------------------------------------------------------------- clients


class ESLClient:
    """A raw ESL peer: replies are queued in order, events are kept in ``events``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = ESLParser()
        self.replies: asyncio.Queue[ESLMessage] = asyncio.Queue()
        self.events: list[ESLEvent] = []
        self.event_messages: list[ESLMessage] = []
        self.closed = False
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for message in self.parser.feed(data):
                    if message.is_event:
                        event = message.event
                        assert event is not None
                        self.events.append(event)
                        self.event_messages.append(message)
                    else:
                        self.replies.put_nowait(message)
                    self._changed.set()
        except ConnectionError:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def reply(self, timeout: float = TIMEOUT) -> ESLMessage:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def send(self, data: bytes) -> ESLMessage:
        self.writer.write(data)
        await self.writer.drain()
        return await self.reply()

    async def command(self, line: str, headers: Iterable[tuple[str, str]] = ()) -> ESLMessage:
        return await self.send(encode_command(line, list(headers)))

    async def api(self, line: str) -> str:
        message = await self.command(f"api {line}")
        assert message.content_type == "api/response"
        return message.body_text

    async def execute(
        self, uuid: str | None, app: str, arg: str = "", *, event_uuid: str | None = None
    ) -> str:
        """sendmsg call-command execute; returns the Event-UUID used."""
        event_uuid = event_uuid or str(uuidlib.uuid4())
        headers = {
            "call-command": "execute",
            "execute-app-name": app,
            "event-lock": "true",
            "Event-UUID": event_uuid,
        }
        if arg:
            headers["execute-app-arg"] = arg
        reply = await self.send(encode_sendmsg(uuid, headers))
        assert reply.reply_text == "+OK"
        return event_uuid

    async def wait_event(self, name: str, timeout: float = TIMEOUT, **headers: str) -> ESLEvent:
        """The first event called ``name`` with these headers (``_`` for ``-`` in names)
        that no earlier wait_event returned."""
        wanted = {key.replace("_", "-"): value for key, value in headers.items()}

        def find() -> ESLEvent | None:
            for index, event in enumerate(self.events):
                if index in self._taken or event.name != name:
                    continue
                if all(event.get(k) == v for k, v in wanted.items()):
                    self._taken.add(index)
                    return event
            return None

        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                found = find()
                if found is not None:
                    return found
                if self.closed:
                    raise AssertionError(f"connection closed before {name} {wanted}")
                await self._changed.wait()

    def names(self, uuid: str | None = None) -> list[str]:
        return [e.name for e in self.events if uuid is None or e.unique_id == uuid]

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(self._task, timeout)

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def connect(
    pbx: DemoFreeSwitch, *, password: str = PASSWORD, events: str | None = "plain ALL"
) -> ESLClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", pbx.esl_port)
    client = ESLClient(reader, writer)
    assert (await client.reply()).content_type == "auth/request"
    reply = await client.command(f"auth {password}")
    assert reply.reply_text == "+OK accepted"
    if events is not None:
        assert (await client.command(f"event {events}")).reply_text.startswith("+OK")
    return client


@pytest.fixture
async def pbx() -> AsyncIterator[DemoFreeSwitch]:
    demo = DemoFreeSwitch(
        password=PASSWORD,
        prompt_durations={"long": 5.0, "menu": 0.2},
    )
    async with demo:
        yield demo


@pytest.fixture
async def esl(pbx: DemoFreeSwitch) -> AsyncIterator[ESLClient]:
    client = await connect(pbx)
    yield client
    await client.close()


async def parked_call(
    pbx: DemoFreeSwitch, esl: ESLClient, number: str = "5551234", name: str = "Alice"
) -> tuple[str, Caller]:
    caller = await pbx.call("800", caller_num=number, caller_name=name)
    await esl.wait_event("CHANNEL_PARK", Unique_ID=caller.uniqueid)
    return caller.uniqueid, caller


# --------------------------------------------------------------------------- auth & commands


async def test_right_password_is_accepted_and_api_status_answers(esl: ESLClient) -> None:
    status = await esl.api("status")
    assert status.startswith("UP 0 years, 0 days")
    assert "FreeSWITCH (Version 1.10.12-release" in status
    api_event = await esl.wait_event("API", API_Command="status")
    assert api_event.get("Core-UUID")


async def test_wrong_password_gets_err_invalid_then_goodbye_and_close(
    pbx: DemoFreeSwitch,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pbx.esl_port)
    client = ESLClient(reader, writer)
    assert (await client.reply()).content_type == "auth/request"
    reply = await client.command("auth wrong-password")
    assert reply.reply_text == "-ERR invalid"
    notice = await client.reply()
    assert notice.content_type == "text/disconnect-notice"
    assert notice.body_text == DISCONNECT_GOODBYE
    await client.wait_closed()
    await client.close()


async def test_commands_before_auth_are_refused_and_the_connection_stays(
    pbx: DemoFreeSwitch,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pbx.esl_port)
    client = ESLClient(reader, writer)
    await client.reply()
    assert (await client.command("api status")).reply_text == "-ERR command not found"
    assert (await client.command(f"auth {PASSWORD}")).reply_text == "+OK accepted"
    await client.close()


async def test_error_replies_are_worded_like_freeswitch(esl: ESLClient) -> None:
    assert (await esl.command("foo bar")).reply_text == "-ERR command not found"
    assert await esl.api("nosuchcommand arg") == "-ERR nosuchcommand Command not found!\n"
    dead = "00000000-0000-0000-0000-000000000000"
    reply = await esl.send(encode_sendmsg(dead, {"call-command": "execute"}))
    assert reply.reply_text == f"-ERR invalid session id [{dead}]"
    assert (await esl.command("event plain NOT_A_REAL_EVENT")).reply_text == (
        "-ERR no keywords supplied"
    )
    assert (await esl.command("event bogusformat ALL")).reply_text == (
        "+OK event listener enabled plain"
    )
    assert await esl.api(f"uuid_kill {dead}") == "-ERR No such channel!\n"
    assert (await esl.command(f"myevents {dead}")).reply_text == "+OK Events Enabled"
    assert (await esl.command("linger")).reply_text == "-ERR not controlling a session"
    assert await esl.api("originate user/9999 &park()") == "-ERR USER_NOT_REGISTERED\n"


async def test_exit_says_bye_then_goodbye_and_closes(esl: ESLClient) -> None:
    assert (await esl.command("exit")).reply_text == "+OK bye"
    assert (await esl.reply()).content_type == "text/disconnect-notice"
    await esl.wait_closed()


async def test_bgapi_honours_the_client_job_uuid_and_reports_the_result_later(
    esl: ESLClient,
) -> None:
    reply = await esl.command("bgapi status", [("Job-UUID", "my-job-1")])
    assert reply.reply_text == "+OK Job-UUID: my-job-1"
    assert reply.get("Job-UUID") == "my-job-1"
    job = await esl.wait_event("BACKGROUND_JOB", Job_UUID="my-job-1")
    assert job.get("Job-Command") == "status"
    assert job.body is not None and job.body.startswith("UP ")

    reply = await esl.command("bgapi uuid_exists nobody")
    job_uuid = reply.get("Job-UUID")
    assert job_uuid and reply.reply_text == f"+OK Job-UUID: {job_uuid}"
    job = await esl.wait_event("BACKGROUND_JOB", Job_UUID=job_uuid)
    assert job.get("Job-Command-Arg") == "nobody"
    assert job.body == "false"

    reply = await esl.command("bgapi nosuchcommand")
    job = await esl.wait_event("BACKGROUND_JOB", Job_UUID=reply.get("Job-UUID", ""))
    assert job.body == "-ERR nosuchcommand Command not found!\n"


async def test_xml_events_carry_the_background_job_result(esl: ESLClient) -> None:
    assert (await esl.command("noevents")).reply_text.startswith("+OK")
    reply = await esl.command("event xml BACKGROUND_JOB")
    assert reply.reply_text == "+OK event listener enabled xml"
    reply = await esl.command("bgapi version")
    job = await esl.wait_event("BACKGROUND_JOB", Job_UUID=reply.get("Job-UUID", ""))
    assert esl.event_messages[-1].content_type == "text/event-xml"
    assert job.body is not None and job.body.startswith("FreeSWITCH Version 1.10.12")


async def test_heartbeat_comes_every_interval() -> None:
    async with DemoFreeSwitch(password=PASSWORD, heartbeat_interval=0.05) as pbx:
        client = await connect(pbx, events="plain HEARTBEAT")
        first = await client.wait_event("HEARTBEAT")
        second = await client.wait_event("HEARTBEAT")
        assert first.get("Event-Info") == "System Ready"
        assert int(second.get("Event-Sequence", "0")) > int(first.get("Event-Sequence", "0"))
        assert "RE_SCHEDULE" not in client.names()
        await client.close()


async def test_json_events_filters_and_noevents(pbx: DemoFreeSwitch) -> None:
    client = await connect(pbx, events="json CHANNEL_PARK CHANNEL_ANSWER")
    first = await pbx.call("800", caller_num="111")
    park = await client.wait_event("CHANNEL_PARK", Unique_ID=first.uniqueid)
    assert client.event_messages[-1].content_type == "text/event-json"
    assert park.get("Caller-Caller-ID-Number") == "111"
    assert park.get("Channel-Name") == "sofia/lab/111@127.0.0.1"

    reply = await client.command(f"filter Unique-ID {first.uniqueid}")
    assert reply.reply_text == f"+OK filter added. [Unique-ID]=[{first.uniqueid}]"
    second = await pbx.call("800", caller_num="222")
    await client.execute(second.uniqueid, "answer")
    await client.execute(first.uniqueid, "answer")
    await client.wait_event("CHANNEL_ANSWER", Unique_ID=first.uniqueid)
    assert second.uniqueid not in {e.unique_id for e in client.events}

    reply = await client.command(f"filter delete Unique-ID {first.uniqueid}")
    assert reply.reply_text == f"+OK filter deleted. [Unique-ID][{first.uniqueid}]"
    assert (await client.command("nixevent CHANNEL_ANSWER")).reply_text == "+OK events nixed"
    assert (await client.command("noevents")).reply_text == "+OK no longer listening for events"
    count = len(client.events)
    await pbx.call("800", caller_num="333")
    await asyncio.sleep(0.05)
    assert len(client.events) == count
    await client.close()


# --------------------------------------------------------------------------- calls


async def test_parked_call_is_answered_and_plays_with_application_uuids(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    caller = await pbx.call("800", caller_num="5551234", caller_name="Alice Smith")
    park = await esl.wait_event("CHANNEL_PARK", Unique_ID=caller.uniqueid)
    assert park.get("Channel-Name") == "sofia/lab/5551234@127.0.0.1" == caller.channel
    assert park.get("Caller-Caller-ID-Name") == "Alice Smith"
    assert park.get("Caller-Destination-Number") == "800"
    assert park.get("Caller-Context") == "default"
    assert park.get("Answer-State") == "ringing"
    assert park.variable("callcenter_route") == "inbound"
    assert esl.names(caller.uniqueid)[:4] == [
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_CREATE",
        "CHANNEL_CALLSTATE",
    ]

    answer_id = await esl.execute(caller.uniqueid, "answer")
    await esl.wait_event("CHANNEL_EXECUTE", Application="answer", Application_UUID=answer_id)
    answered = await esl.wait_event("CHANNEL_ANSWER", Unique_ID=caller.uniqueid)
    assert answered.get("Answer-State") == "answered"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=answer_id)
    assert done.get("Application-Response") == "_none_"

    # The argument as a text/plain body, as in trace b.
    play_id = str(uuidlib.uuid4())
    reply = await esl.send(
        encode_sendmsg(
            caller.uniqueid,
            {
                "call-command": "execute",
                "execute-app-name": "playback",
                "event-lock": "true",
                "Event-UUID": play_id,
                "content-type": "text/plain",
            },
            "/usr/share/sounds/welcome-menu.wav",
        )
    )
    assert reply.reply_text == "+OK"
    start = await esl.wait_event("PLAYBACK_START", Unique_ID=caller.uniqueid)
    assert start.get("Playback-File-Path") == "/usr/share/sounds/welcome-menu.wav"
    stop = await esl.wait_event("PLAYBACK_STOP", Unique_ID=caller.uniqueid)
    assert stop.get("Playback-Status") == "done"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=play_id)
    assert done.get("Application-Response") == "FILE PLAYED"
    assert done.get("Application-Data") == "/usr/share/sounds/welcome-menu.wav"
    assert caller.heard == ["welcome-menu"]
    await caller.wait_for_prompt("welcome-menu", timeout=0.1)
    assert caller.state == "up"


async def test_play_and_get_digits_stores_what_the_caller_pressed(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    pagd = await esl.execute(
        uuid,
        "play_and_get_digits",
        "1 4 1 2000 # /snd/menu.wav silence_stream://250 lab_digits \\d+ 1000",
    )
    await esl.wait_event("PLAYBACK_START", Playback_File_Path="/snd/menu.wav")
    await caller.press("123#")
    stop = await esl.wait_event("PLAYBACK_STOP", Playback_File_Path="/snd/menu.wav")
    assert stop.get("Playback-Status") == "break"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=pagd)
    assert done.get("Application-Response") == "_none_"
    assert done.variable("lab_digits") == "123"
    assert done.variable("read_terminator_used") == "#"
    assert done.variable("read_result") == "success"
    digits = [e.get("DTMF-Digit") for e in esl.events if e.name == "DTMF"]
    assert digits == ["1", "2", "3", "#"]
    dtmf = next(e for e in esl.events if e.name == "DTMF")
    assert dtmf.get("DTMF-Duration") and dtmf.get("DTMF-Source") == "RTP"
    # uuid_getvar answers without a trailing newline (trace b).
    assert await esl.api(f"uuid_getvar {uuid} lab_digits") == "123"
    assert await esl.api(f"uuid_getvar {uuid} not_set") == "_undef_"


async def test_play_and_get_digits_retries_after_the_invalid_prompt_then_times_out(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, _ = await parked_call(pbx, esl)
    pagd = await esl.execute(
        uuid, "play_and_get_digits", "2 2 2 100 # /snd/short.wav /snd/invalid.wav pin \\d+"
    )
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=pagd)
    assert done.variable("read_result") == "timeout"
    assert done.variable("pin") is None
    # The invalid prompt plays between the two tries.
    assert [e.get("Playback-File-Path") for e in esl.events if e.name == "PLAYBACK_START"] == [
        "/snd/short.wav",
        "/snd/invalid.wav",
        "/snd/short.wav",
    ]


async def test_read_collects_digits_until_the_terminator(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    read = await esl.execute(uuid, "read", "1 5 /snd/enter-account.wav account 1000 #")
    await caller.wait_for_prompt("enter-account")
    await caller.press("42#")
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=read)
    assert done.variable("account") == "42"
    assert done.variable("read_result") == "success"
    sleep = await esl.execute(uuid, "sleep", "50")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=sleep)


async def test_a_playback_terminator_stops_the_prompt_early(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    caller = await pbx.call("800", caller_num="5551234")
    await esl.wait_event("CHANNEL_PARK", Unique_ID=caller.uniqueid)
    await esl.execute(caller.uniqueid, "set", "playback_terminators=#")
    play = await esl.execute(caller.uniqueid, "playback", "/snd/long.wav")
    await caller.wait_for_prompt("long")
    await caller.press("5")  # not a terminator: eaten, the prompt goes on
    await asyncio.sleep(0.05)
    assert "PLAYBACK_STOP" not in esl.names(caller.uniqueid)
    await caller.press("#")
    stop = await esl.wait_event("PLAYBACK_STOP", Unique_ID=caller.uniqueid, timeout=1.0)
    assert stop.get("Playback-Status") == "break"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=play)
    assert done.get("Application-Response") == "FILE PLAYED"
    assert done.variable("playback_terminator_used") == "#"


async def test_hold_music_plays_until_uuid_break(pbx: DemoFreeSwitch, esl: ESLClient) -> None:
    uuid, caller = await parked_call(pbx, esl)
    moh = await esl.execute(uuid, "playback", "local_stream://moh")
    await caller.wait_moh()
    start = await esl.wait_event("PLAYBACK_START", Unique_ID=uuid)
    assert start.get("Playback-File-Type") == "local_stream"
    await asyncio.sleep(0.1)
    assert "PLAYBACK_STOP" not in esl.names(uuid)
    assert await esl.api(f"uuid_break {uuid}") == "+OK\n"
    stop = await esl.wait_event("PLAYBACK_STOP", Unique_ID=uuid)
    assert stop.get("Playback-Status") == "break"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=moh)
    assert done.get("Application-Response") == "FILE PLAYED"
    assert caller.heard == []


async def test_caller_hangup_mid_playback_reports_done_then_playback_error(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    caller = await pbx.call("800", caller_num="5551234")
    park = await esl.wait_event("CHANNEL_PARK", Unique_ID=caller.uniqueid)
    park_id = next(
        e.get("Application-UUID")
        for e in esl.events
        if e.name == "CHANNEL_EXECUTE" and e.get("Application") == "park"
    )
    assert park.get("Unique-ID") == caller.uniqueid
    await esl.execute(caller.uniqueid, "answer")
    play = await esl.execute(caller.uniqueid, "playback", "/snd/long.wav")
    await caller.wait_for_prompt("long")
    await caller.hangup()
    await caller.wait_ended()
    with pytest.raises(CallHungUp):
        await caller.press("1")
    await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=caller.uniqueid)
    after = [
        (e.name, e.get("Playback-Status") or e.get("Application-Response") or "")
        for e in esl.events[
            next(i for i, e in enumerate(esl.events) if e.name == "CHANNEL_HANGUP") :
        ]
        if e.unique_id == caller.uniqueid
        and e.name not in ("CHANNEL_STATE", "CHANNEL_CALLSTATE", "CHANNEL_UNPARK")
    ]
    assert after[:5] == [
        ("CHANNEL_HANGUP", ""),
        ("PLAYBACK_STOP", "done"),
        ("CHANNEL_EXECUTE_COMPLETE", "PLAYBACK ERROR"),
        ("CHANNEL_EXECUTE_COMPLETE", "PLAYBACK ERROR"),
        ("CHANNEL_HANGUP_COMPLETE", ""),
    ]
    completes = [e for e in esl.events if e.name == "CHANNEL_EXECUTE_COMPLETE"]
    assert completes[-2].get("Application-UUID") == play
    assert completes[-1].get("Application-UUID") == park_id
    assert caller.hangup_cause == 16 and caller.hangup_cause_name == "NORMAL_CLEARING"
    reply = await esl.send(
        encode_sendmsg(caller.uniqueid, {"call-command": "execute", "execute-app-name": "answer"})
    )
    assert reply.reply_text == f"-ERR invalid session id [{caller.uniqueid}]"
    assert await esl.api(f"uuid_kill {caller.uniqueid}") == "-ERR No such channel!\n"


async def test_caller_hanging_up_before_answer_is_originator_cancel(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    await caller.hangup()
    done = await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=uuid)
    assert done.get("Hangup-Cause") == "ORIGINATOR_CANCEL"
    assert done.variable("hangup_cause") == "ORIGINATOR_CANCEL"
    assert esl.names(uuid)[-2:] == ["CHANNEL_DESTROY", "CHANNEL_STATE"]


@pytest.mark.parametrize("endpoint", ["user/1001", "PJSIP/1001", "sofia/lab/1001@127.0.0.1"])
async def test_bridge_to_an_agent_who_answers(
    pbx: DemoFreeSwitch, esl: ESLClient, endpoint: str
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
    await esl.wait_event("CHANNEL_PARK", Unique_ID=caller.uniqueid)
    await esl.execute(caller.uniqueid, "answer")
    bridge_id = await esl.execute(caller.uniqueid, "bridge", f"{{call_timeout=2}}{endpoint}")
    outgoing = await esl.wait_event("CHANNEL_OUTGOING")
    leg = outgoing.get("Unique-ID", "")
    assert outgoing.get("Channel-Name") == "sofia/lab/1001@127.0.0.1"
    assert outgoing.get("Other-Leg-Unique-ID") == caller.uniqueid
    assert outgoing.get("Channel-Call-UUID") == caller.uniqueid
    await esl.wait_event("CHANNEL_ANSWER", Unique_ID=leg)
    bridged = await esl.wait_event("CHANNEL_BRIDGE", Unique_ID=caller.uniqueid)
    assert bridged.get("Other-Leg-Unique-ID") == leg
    assert bridged.get("Bridge-B-Unique-ID") == leg
    assert await caller.wait_bridged() == "PJSIP/1001"
    assert caller.state == "bridged"
    assert agent.rings == 1 and agent.answered == 1
    assert await esl.api(f"uuid_getvar {caller.uniqueid} originate_disposition") == "SUCCESS"

    await agent.hangup()
    unbridge = await esl.wait_event("CHANNEL_UNBRIDGE", Unique_ID=caller.uniqueid)
    assert unbridge.get("Other-Leg-Unique-ID") == leg
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=bridge_id)
    assert done.variable("bridge_hangup_cause") == "NORMAL_CLEARING"
    # hangup_after_bridge is false by default: the caller stays parked for the daemon.
    await asyncio.sleep(0.05)
    assert not caller.hangup_cause
    await agent.wait_idle()
    reply = await esl.send(
        encode_sendmsg(
            caller.uniqueid, {"call-command": "hangup", "hangup-cause": "NORMAL_CLEARING"}
        )
    )
    assert reply.reply_text == "+OK"
    await caller.wait_ended()
    assert caller.hangup_cause_name == "NORMAL_CLEARING"


async def test_bridge_to_an_agent_who_never_answers_hangs_up_the_caller_no_answer(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    await esl.execute(uuid, "bridge", "{call_timeout=0.2}user/1001")
    await agent.wait_rings()
    leg = (await esl.wait_event("CHANNEL_OUTGOING")).get("Unique-ID", "")
    leg_done = await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=leg)
    assert leg_done.get("Hangup-Cause") == "NO_ANSWER"
    # No continue_on_fail: FreeSWITCH hangs the caller up with the b-leg's cause.
    done = await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=uuid)
    assert done.get("Hangup-Cause") == "NO_ANSWER"
    assert done.variable("originate_disposition") == "NO_ANSWER"
    assert done.variable("DIALSTATUS") == "NOANSWER"
    assert caller.hangup_cause == 19
    assert agent.answered == 0


async def test_bridge_to_a_rejecting_agent_with_continue_on_fail_keeps_the_caller(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(reject=True))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    await esl.execute(uuid, "set", "continue_on_fail=true")
    bridge_id = await esl.execute(uuid, "bridge", "user/1001")
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=bridge_id)
    assert done.variable("originate_disposition") == "USER_BUSY"
    assert done.variable("DIALSTATUS") == "BUSY"
    leg_hangup = await esl.wait_event("CHANNEL_HANGUP", Hangup_Cause="USER_BUSY")
    assert leg_hangup.get("Unique-ID") != uuid
    assert not caller.hangup_cause
    assert agent.rings == 0


async def test_caller_hanging_up_while_the_agent_rings_cancels_the_agent_leg(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    await esl.execute(uuid, "bridge", "user/1001")
    await agent.wait_rings()
    await caller.hangup()
    await esl.wait_event("CHANNEL_HANGUP", Hangup_Cause="ORIGINATOR_CANCEL")
    await agent.wait_idle()
    await caller.wait_ended()


async def test_originate_parks_the_answered_agent_then_uuid_bridge_and_kill(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    """Trace c: originate &park(), uuid_bridge, uuid_kill of the agent ends both legs."""
    pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    leg = str(uuidlib.uuid4())
    result = await esl.api(
        f"originate {{origination_uuid={leg},origination_caller_id_number=1000,"
        f"origination_caller_id_name=CallCenter}}user/1001 &park()"
    )
    assert result == f"+OK {leg}\n"
    parked = await esl.wait_event("CHANNEL_PARK", Unique_ID=leg)
    assert parked.get("Caller-Caller-ID-Number") == "1000"
    assert parked.get("Caller-Caller-ID-Name") == "CallCenter"

    assert await esl.api(f"uuid_bridge {uuid} {leg}") == f"+OK {leg}\n"
    bridged = await esl.wait_event("CHANNEL_BRIDGE", Unique_ID=uuid)
    assert bridged.get("Other-Leg-Unique-ID") == leg
    assert await caller.wait_bridged() == "PJSIP/1001"
    executed = [
        e.get("Application-Data")
        for e in esl.events
        if e.name == "CHANNEL_EXECUTE" and e.get("Application") == "uuid_bridge"
    ]
    assert sorted(executed) == sorted([leg, uuid])

    rows = json.loads(await esl.api("show channels as json"))
    assert rows["row_count"] == 2
    assert {row["uuid"] for row in rows["rows"]} == {uuid, leg}
    calls = json.loads(await esl.api("show calls as json"))
    assert calls["row_count"] == 1, "one row per bridge, its b-leg beside its a-leg"
    (call,) = calls["rows"]
    assert {call["uuid"], call["b_uuid"]} == {uuid, leg}
    assert {call["name"], call["b_name"]} == {
        "sofia/lab/5551234@127.0.0.1",
        "sofia/lab/1001@127.0.0.1",
    }

    assert await esl.api(f"uuid_kill {leg} NORMAL_CLEARING") == "+OK\n"
    await esl.wait_event("CHANNEL_UNBRIDGE", Unique_ID=uuid)
    done = await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=uuid)
    assert done.get("Hangup-Cause") == "NORMAL_CLEARING"
    assert await esl.api(f"uuid_exists {uuid}") == "false"


async def test_uuid_bridge_stops_the_hold_music_of_a_waiting_caller(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    """The queue pattern: caller on hold music, agent originated apart, then uuid_bridge."""
    pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    moh = await esl.execute(uuid, "playback", "local_stream://moh")
    await caller.wait_moh()
    reply = await esl.command("bgapi originate user/1001 &park()")
    job = await esl.wait_event("BACKGROUND_JOB", Job_UUID=reply.get("Job-UUID", ""))
    assert job.body is not None and job.body.startswith("+OK ")
    leg = job.body[4:].strip()
    assert await esl.api(f"uuid_bridge {uuid} {leg}") == f"+OK {leg}\n"
    stop = await esl.wait_event("PLAYBACK_STOP", Unique_ID=uuid)
    assert stop.get("Playback-Status") == "break"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=moh)
    assert done.get("Application-Response") == "FILE PLAYED"
    park_done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Unique_ID=uuid, Application="park")
    assert park_done.get("Other-Leg-Unique-ID") == leg
    await esl.wait_event("CHANNEL_BRIDGE", Unique_ID=uuid)
    assert await caller.wait_bridged() == "PJSIP/1001"


async def test_sendevent_reaches_clients_filtering_on_its_subclass(esl: ESLClient) -> None:
    assert (await esl.command("noevents")).reply_text.startswith("+OK")
    assert (await esl.command("event plain CUSTOM lab::test")).reply_text == (
        "+OK event listener enabled plain"
    )
    reply = await esl.command("filter Event-Subclass lab::test")
    assert reply.reply_text == "+OK filter added. [Event-Subclass]=[lab::test]"
    body = "line 1\nline 2\n"
    data = (
        "sendevent CUSTOM\nEvent-Subclass: lab::test\nX-Lab-Header: hello world & more%\n"
        f"content-length: {len(body)}\n\n{body}"
    ).encode()
    reply = await esl.send(data)
    assert reply.reply_text is not None and reply.reply_text.startswith("+OK ")
    event = await esl.wait_event("CUSTOM")
    assert event.subclass == "lab::test"
    assert event.get("X-Lab-Header") == "hello world & more%"
    assert event.get("Event-UUID") == reply.reply_text[4:]
    assert event.body == body


async def test_originate_that_nobody_answers_is_err_no_answer(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
    result = await esl.api("originate {originate_timeout=0.2}user/1001 &park()")
    assert result == "-ERR NO_ANSWER\n"
    assert agent.rings == 1
    done = await esl.wait_event("CHANNEL_HANGUP_COMPLETE")
    assert done.get("Hangup-Cause") == "NO_ANSWER"


async def test_uuid_transfer_to_an_agent_number_bridges_the_caller(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    assert await esl.api(f"uuid_transfer {uuid} 1002 XML default") == "+OK\n"
    assert await caller.wait_bridged(device="PJSIP/1002") == "PJSIP/1002"
    park_done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Unique_ID=uuid, Application="park")
    assert park_done.get("Application-Response") == "_none_"
    bridged = await esl.wait_event("CHANNEL_BRIDGE", Unique_ID=uuid)
    assert bridged.get("Caller-Destination-Number") == "1002"


async def test_transfer_app_and_exported_variables_reach_the_agent_leg(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "export", "callcenter_queue=support")
    await esl.execute(uuid, "transfer", "1002 XML default")
    await caller.wait_bridged(device="PJSIP/1002")
    leg = (await esl.wait_event("CHANNEL_OUTGOING")).get("Unique-ID", "")
    assert await esl.api(f"uuid_getvar {leg} callcenter_queue") == "support"
    assert await esl.api(f"uuid_getvar {uuid} callcenter_queue") == "support"


async def test_show_channels_as_json_and_csv(pbx: DemoFreeSwitch, esl: ESLClient) -> None:
    assert await esl.api("show channels") == "\n0 total.\n"
    assert await esl.api("show channels as json") == '{"row_count": 0}\n'
    uuid, _ = await parked_call(pbx, esl, number="5551234", name="Alice")
    rows = json.loads(await esl.api("show channels as json"))
    assert rows["row_count"] == 1
    row = rows["rows"][0]
    assert row["uuid"] == uuid
    assert row["name"] == "sofia/lab/5551234@127.0.0.1"
    assert row["cid_name"] == "Alice" and row["dest"] == "800"
    assert row["application"] == "park" and row["callstate"] == "RINGING"
    csv = await esl.api("show channels")
    lines = csv.split("\n")
    assert lines[0].startswith("uuid,direction,created,created_epoch,name,state,cid_name")
    assert lines[1].startswith(f"{uuid},inbound,")
    assert csv.endswith("\n\n1 total.\n")


async def test_show_calls_prints_the_columns_freeswitch_prints_and_a_lone_channel_alone(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    """Trace d's ``show calls``: a leg's columns, the bridged leg's with ``b_``; a channel
    in no bridge has its own row with those empty."""
    traced = [json.loads(line) for line in (TRACES / "d_transfers.jsonl").read_text().splitlines()]
    (printed,) = [
        r["data"] for r in traced if r["dir"] == "in" and "\nuuid,direction," in r["data"]
    ]
    header = printed.split("\n\n", 1)[1].split("\n", 1)[0]
    uuid, _ = await parked_call(pbx, esl)
    csv = await esl.api("show calls")
    lines = csv.split("\n")
    assert lines[0] == header
    row = dict(zip(header.split(","), lines[1].split(","), strict=True))
    assert (row["uuid"], row["b_uuid"], row["call_created_epoch"]) == (uuid, "", "")
    assert csv.endswith("\n\n1 total.\n")


async def test_drop_esl_connections_closes_clients_but_calls_go_on(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, _ = await parked_call(pbx, esl)
    await pbx.drop_esl_connections()
    await esl.wait_closed()
    again = await connect(pbx)
    assert await again.api(f"uuid_exists {uuid}") == "true"
    await again.close()


# --------------------------------------------------------------------------- say & record


async def test_say_plays_each_word_under_the_names_the_demo_asterisk_uses(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    await esl.execute(uuid, "set", "sound_prefix=/snd/en/us/callie")
    number = await esl.execute(uuid, "say", "en number pronounced 42")
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=number)
    assert done.get("Application") == "say"
    assert done.get("Application-Data") == "en number pronounced 42"
    assert done.get("Application-Response") == "_none_"
    starts = [e.get("Playback-File-Path") for e in esl.events if e.name == "PLAYBACK_START"]
    assert starts == ["/snd/en/us/callie/digits/40.wav", "/snd/en/us/callie/digits/2.wav"]

    spelled = await esl.execute(uuid, "say", "en name_spelled iterated A1*")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=spelled)
    await esl.execute(uuid, "set", "timezone=UTC")
    # 2024-03-05 12:00 UTC, a Tuesday.
    date = await esl.execute(uuid, "say", "en current_date pronounced 1709640000")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=date)
    assert caller.heard == [
        "digits/40",
        "digits/2",
        "letters/a",
        "digits/1",
        "digits/star",
        "digits/day-2",
        "digits/mon-2",
        "digits/h-5",
        "digits/2",
        "digits/thousand",
        "digits/20",
        "digits/4",
    ]
    assert {language for language, _ in caller.heard_in} == {"en"}
    await caller.wait_for_prompt("digits/star", timeout=0.1)


async def test_say_in_the_channel_language_is_heard_in_it(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    assert caller.language == "en"
    assert await esl.api(f"uuid_setvar {uuid} default_language fr_CA") == "+OK\n"
    say = await esl.execute(uuid, "say", "fr number iterated 7")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=say)
    play = await esl.execute(uuid, "playback", "/snd/fr/au-revoir.wav")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=play)
    assert caller.language == "fr_CA"
    assert caller.heard_in == [("fr_CA", "digits/7"), ("fr_CA", "au-revoir")]


async def test_a_playback_terminator_stops_say_before_the_remaining_words(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    pbx.prompt_durations["digits/1.wav"] = 5.0
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "set", "playback_terminators=#")
    say = await esl.execute(uuid, "say", "en number iterated 123")
    await caller.wait_for_prompt("digits/1")
    await caller.press("5")  # not a terminator: eaten, the word goes on
    await asyncio.sleep(0.05)
    assert "PLAYBACK_STOP" not in esl.names(uuid)
    await caller.press("#")
    stop = await esl.wait_event("PLAYBACK_STOP", Unique_ID=uuid, timeout=1.0)
    assert stop.get("Playback-Status") == "break"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=say)
    assert done.get("Application-Response") == "_none_"
    assert done.variable("playback_terminator_used") == "#"
    assert caller.heard == ["digits/1"]


async def test_say_with_a_bad_usage_or_an_unknown_type_says_nothing_and_keeps_the_call(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    for arg in ("en number 5", "en ip_address pronounced 10.0.0.1", "en number pronounced x"):
        say = await esl.execute(uuid, "say", arg)
        done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=say)
        assert done.get("Application-Response") == "_none_"
    assert caller.heard == []
    assert caller.state == "ringing" and caller.hangup_cause is None


async def test_record_ends_on_a_terminator_and_leaves_a_wav_of_that_length(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    await esl.execute(uuid, "set", "playback_terminators=#")
    target = tmp_path / "vm" / "sales" / "msg.wav"
    record = await esl.execute(uuid, "record", f"{target} 10 200 3")
    start = await esl.wait_event("RECORD_START", Unique_ID=uuid)
    assert start.get("Record-File-Path") == str(target)
    await asyncio.sleep(0.3)
    await caller.press("1")  # not a terminator: eaten, the recording goes on
    await asyncio.sleep(0.05)
    assert "RECORD_STOP" not in esl.names(uuid)
    await caller.press("#")
    stop = await esl.wait_event("RECORD_STOP", Unique_ID=uuid)
    assert stop.get("Record-File-Path") == str(target)
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=record)
    assert done.get("Application-Response") == "_none_"
    assert done.variable("playback_terminator_used") == "#"
    assert done.variable("silence_hits_exhausted") == "false"
    millis = int(done.variable("record_ms") or "0")
    assert 300 <= millis < 1500
    assert done.variable("record_seconds") == str(millis // 1000)
    assert int(done.variable("record_samples") or "0") // 8 == millis
    with wave.open(str(target)) as recorded:
        assert recorded.getframerate() == 8000
        assert recorded.getnchannels() == 1 and recorded.getsampwidth() == 2
        assert abs(recorded.getnframes() / 8 - millis) < 2
    assert caller.state == "up"


async def test_record_stops_after_the_silence_seconds_once_the_caller_stops_speaking(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    target = tmp_path / "quiet.wav"
    record = await esl.execute(uuid, "record", f"{target} 20 200 1")
    await esl.wait_event("RECORD_START", Unique_ID=uuid)
    caller.speak(0.4)
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=record, timeout=5)
    assert done.variable("silence_hits_exhausted") == "true"
    # 0.4 s of speech, then 1 s of silence (FreeSWITCH keeps the silence in the file).
    assert 1300 <= int(done.variable("record_ms") or "0") < 2200
    assert done.variable("playback_terminator_used") is None


async def test_record_stops_at_its_time_limit_at_the_record_rate(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, _ = await parked_call(pbx, esl)
    await esl.execute(uuid, "set", "record_rate=16000")
    target = tmp_path / "limit.wav"
    record = await esl.execute(uuid, "record", f"{target} 1")
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=record, timeout=5)
    assert done.variable("record_seconds") == "1"
    assert 1000 <= int(done.variable("record_ms") or "0") < 1600
    with wave.open(str(target)) as recorded:
        assert recorded.getframerate() == 16000
        assert 16000 <= recorded.getnframes() < 25600


async def test_uuid_break_ends_a_recording_and_the_call_goes_on(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    record = await esl.execute(uuid, "record", f"{tmp_path / 'b.wav'}")
    await esl.wait_event("RECORD_START", Unique_ID=uuid)
    assert await esl.api(f"uuid_break {uuid}") == "+OK\n"
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=record)
    assert done.variable("record_ms") is not None
    assert caller.hangup_cause is None


async def test_hanging_up_mid_recording_keeps_the_file_and_completes_after_the_hangup(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    await esl.execute(uuid, "answer")
    target = tmp_path / "gone.wav"
    record = await esl.execute(uuid, "record", f"{target} 10")
    await esl.wait_event("RECORD_START", Unique_ID=uuid)
    caller.speak(1.0)
    await asyncio.sleep(0.2)
    await caller.hangup()
    done = await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=record)
    names = esl.names(uuid)
    assert names.index("CHANNEL_HANGUP") < names.index("RECORD_STOP")
    assert 150 <= int(done.variable("record_ms") or "0") < 1000
    with wave.open(str(target)) as recorded:
        assert recorded.getnframes() > 1000
    await caller.wait_ended()
    assert caller.hangup_cause_name == "NORMAL_CLEARING"


async def test_record_into_a_path_that_cannot_be_written_hangs_up_out_of_order(
    pbx: DemoFreeSwitch, esl: ESLClient, tmp_path: Path
) -> None:
    uuid, caller = await parked_call(pbx, esl)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    await esl.execute(uuid, "record", f"{blocker / 'msg.wav'} 5")
    await caller.wait_ended()
    assert caller.hangup_cause_name == "DESTINATION_OUT_OF_ORDER"
    assert "RECORD_START" not in esl.names(uuid)


# --------------------------------------------------------------------------- outbound socket


class SocketServer:
    """The daemon side of outbound-socket mode: accepts connections from the PBX."""

    def __init__(self) -> None:
        self.clients: asyncio.Queue[ESLClient] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.clients.put_nowait(ESLClient(reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def next_client(self) -> ESLClient:
        return await asyncio.wait_for(self.clients.get(), TIMEOUT)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_outbound_socket_connect_myevents_linger_and_goodbye() -> None:
    server = SocketServer()
    port = await server.start()
    async with DemoFreeSwitch(password=PASSWORD, mode="outbound") as pbx:
        pbx.set_socket_address("127.0.0.1", port)
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        conn = await server.next_client()
        reply = await conn.command("connect")
        assert reply.is_connect_reply and reply.reply_text == "+OK"
        data = reply.event
        assert data is not None and data.name == "CHANNEL_DATA"
        assert data.unique_id == caller.uniqueid
        assert data.get("Channel-Destination-Number") == "800"
        assert data.get("Caller-Caller-ID-Name") == "Alice"
        assert data.variable("callcenter_route") == "inbound"
        assert data.get("Socket-Mode") == "async" and data.get("Control") == "full"
        assert (await conn.command("myevents")).reply_text == "+OK Events Enabled"
        assert (await conn.command("linger 0.2")).reply_text == "+OK will linger 0.2 seconds"
        reply = await conn.command("event plain CHANNEL_EXECUTE_COMPLETE DTMF")
        assert reply.reply_text == "+OK event listener enabled plain"

        answer = await conn.execute(None, "answer")
        done = await conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=answer)
        assert done.get("Answer-State") == "answered"
        play = await conn.execute(None, "playback", "/snd/welcome.wav")
        await conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=play)
        assert await conn.api(f"uuid_getvar {caller.uniqueid} callcenter_route") == "inbound"
        reply = await conn.send(
            encode_sendmsg(None, {"call-command": "hangup", "hangup-cause": "NORMAL_CLEARING"})
        )
        assert reply.reply_text == "+OK"
        socket_done = await conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="socket")
        assert socket_done.get("Application-Response") == "FILE PLAYED"
        await conn.wait_event("CHANNEL_HANGUP_COMPLETE")
        linger = await conn.reply()
        assert linger.content_type == "text/disconnect-notice"
        assert linger.get("Content-Disposition") == "linger"
        assert linger.get("Controlled-Session-UUID") == caller.uniqueid
        goodbye = await conn.reply(timeout=2.0)
        assert goodbye.get("Content-Disposition") == "disconnect"
        assert goodbye.body_text == DISCONNECT_GOODBYE
        await conn.wait_closed()
        # Only this channel's events came (myevents), and no PLAYBACK_* (not in myevents).
        assert {e.unique_id for e in conn.events} == {caller.uniqueid}
        assert "PLAYBACK_START" not in conn.names()
        assert "CHANNEL_DESTROY" not in conn.names()
    await server.stop()


async def test_outbound_socket_closing_without_resume_hangs_up_the_call() -> None:
    server = SocketServer()
    port = await server.start()
    async with DemoFreeSwitch(password=PASSWORD, mode="outbound") as pbx:
        pbx.set_socket_address("127.0.0.1", port)
        caller = await pbx.call("*71", caller_num="1001")
        conn = await server.next_client()
        reply = await conn.command("connect")
        event = reply.event
        assert event is not None and event.variable("callcenter_route") == "agent-login"
        await conn.close()
        await caller.wait_ended()
        assert caller.hangup_cause_name == "NORMAL_CLEARING"
    await server.stop()


async def test_outbound_socket_unreachable_sends_the_caller_to_the_failover_at_once() -> None:
    async with DemoFreeSwitch(password=PASSWORD, mode="outbound") as pbx:
        pbx.set_socket_address("127.0.0.1", 1)
        caller = await pbx.call("800")
        await caller.wait_ended()
        assert caller.heard == [FAILOVER_PROMPT_NAME]


async def test_a_caller_nobody_takes_out_of_park_goes_to_the_failover() -> None:
    async with DemoFreeSwitch(password=PASSWORD, prompt_seconds=0.02, failover_after=0.3) as pbx:
        caller = await pbx.call("800")
        await asyncio.sleep(0.15)
        assert caller.state == "ringing" and caller.heard == [], "parked, unanswered, in silence"
        await caller.wait_for_prompt(FAILOVER_PROMPT_NAME, timeout=TIMEOUT)
        await caller.wait_ended()
        assert caller.hangup_cause_name == "NORMAL_CLEARING"


async def test_sched_del_drops_the_failover_by_the_id_the_dialplan_kept(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    uid, caller = await parked_call(pbx, esl)
    task = await esl.api(f"uuid_getvar {uid} callcenter_failover_task")
    assert task.isdigit() and pbx.scheduler.pending(uid) == [int(task)]
    execute = await esl.wait_event("CHANNEL_EXECUTE", Unique_ID=uid, Application="sched_transfer")
    assert execute.get("Application-Data") == "+20 callcenter_failover XML default"
    assert await esl.api(f"sched_del {task}") == "+OK Deleted: 1\n"
    assert await esl.api(f"sched_del {task}") == "+OK Deleted: 0\n"
    assert await esl.api("sched_del") == "-ERR Invalid syntax\n"
    other, second = await parked_call(pbx, esl, number="5550002")
    assert pbx.scheduler.pending(other)
    await second.hangup()
    await second.wait_ended()
    assert pbx.scheduler.pending(other) == [], "a channel's tasks go with it"
    await caller.hangup()


# --------------------------------------------------------------------------- trace shapes


def _shape(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Header names in order, the ``variable_*`` run folded into one name."""
    names: list[str] = []
    for key, _ in pairs:
        name = "variable_*" if key.startswith("variable_") else key
        if not names or names[-1] != name:
            names.append(name)
    return names


def _trace_events() -> dict[str, list[list[str]]]:
    if not TRACES.is_dir():
        pytest.skip(f"real FreeSWITCH traces not found at {TRACES} (../shared is absent)")
    shapes: dict[str, list[list[str]]] = {}
    for path in sorted(TRACES.glob("*.jsonl")):
        parsers: dict[int, ESLParser] = {}
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["dir"] != "in":
                continue
            parser = parsers.setdefault(record["conn"], ESLParser())
            for message in parser.feed(record["data"].encode()):
                event = message.event if message.is_event else None
                if event is not None:
                    shapes.setdefault(event.name, []).append(_shape(event.pairs))
    return shapes


def _same_order(ours: list[str], theirs: list[str]) -> bool:
    return [n for n in ours if n in theirs] == [n for n in theirs if n in ours]


async def test_every_event_and_header_the_demo_sends_exists_in_the_real_traces() -> None:
    shapes = _trace_events()
    real = {name: {h for shape in found for h in shape} for name, found in shapes.items()}
    common = [
        "Event-Name",
        "Core-UUID",
        "FreeSWITCH-Hostname",
        "FreeSWITCH-Switchname",
        "FreeSWITCH-IPv4",
        "FreeSWITCH-IPv6",
        "Event-Date-Local",
        "Event-Date-GMT",
        "Event-Date-Timestamp",
        "Event-Calling-File",
        "Event-Calling-Function",
        "Event-Calling-Line-Number",
        "Event-Sequence",
    ]
    async with DemoFreeSwitch(password=PASSWORD, heartbeat_interval=0.05) as pbx:
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
        esl = await connect(pbx)
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        uuid = caller.uniqueid
        await esl.wait_event("CHANNEL_PARK", Unique_ID=uuid)
        await esl.execute(uuid, "answer")
        await esl.execute(uuid, "playback", "tone_stream://%(100,0,440)")
        pagd = await esl.execute(uuid, "play_and_get_digits", "1 1 1 500 # /snd/menu.wav x d")
        await caller.wait_for_prompt("menu")
        await caller.press("1")
        await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=pagd)
        await esl.execute(uuid, "bridge", "user/1001")
        await caller.wait_bridged()
        await esl.command("bgapi status")
        await esl.wait_event("BACKGROUND_JOB")
        await esl.wait_event("HEARTBEAT")
        await agent.hangup()
        await esl.wait_event("CHANNEL_UNBRIDGE")
        await caller.hangup()
        await esl.wait_event("CHANNEL_HANGUP_COMPLETE", Unique_ID=uuid)
        await esl.close()
    emitted: dict[str, set[str]] = {}
    for event in esl.events:
        assert [k for k, _ in event.pairs[: len(common)]] == common, event.name
        emitted.setdefault(event.name, set()).update(
            k for k, _ in event.pairs if not k.startswith("variable_")
        )
        # Same header order as at least one real event of that name.
        ours = _shape(event.pairs)
        assert any(_same_order(ours, theirs) for theirs in shapes.get(event.name, [])), (
            event.name,
            ours,
        )
    assert {
        "CHANNEL_CREATE",
        "CHANNEL_PARK",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "DTMF",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "HEARTBEAT",
        "BACKGROUND_JOB",
    } <= set(emitted)
    unknown = sorted(set(emitted) - set(real))
    assert not unknown, f"events FreeSWITCH never sent in the traces: {unknown}"
    # The channel block (switch_channel_event_set_data) is the same for every channel event;
    # the traces just do not show every event on every kind of channel (CHANNEL_UNPARK only
    # on a channel without another leg), so it is checked against all channel events.
    block_prefixes = ("Channel-", "Caller-", "Other-", "Hangup-Cause")
    block_names = {"Unique-ID", "Call-Direction", "Presence-Call-Direction", "Answer-State"}
    channel_block = {
        header
        for name, headers in real.items()
        if name.startswith("CHANNEL_") or name in ("DTMF", "PLAYBACK_START", "PLAYBACK_STOP")
        for header in headers
        if header.startswith(block_prefixes) or header in block_names
    }
    for name, headers in emitted.items():
        allowed = real[name] | (channel_block if "Unique-ID" in real[name] else set())
        extra = sorted(headers - allowed)
        assert not extra, f"{name}: headers not in the real traces: {extra}"


# --------------------------------------------------------------------------- units


def _channel() -> FSChannel:
    hub = EventHub(lambda event: None)
    return FSChannel(
        hub,
        uuid=str(uuidlib.uuid4()),
        name="sofia/lab/1@127.0.0.1",
        device="sofia/lab/1",
        direction="inbound",
        caller_num="1",
        caller_name="",
        destination="800",
    )


def test_an_illegal_channel_state_move_raises() -> None:
    chan = _channel()
    chan.set_state(ChannelState.CS_INIT)
    with pytest.raises(IllegalTransition):
        chan.set_state(ChannelState.CS_EXCHANGE_MEDIA)


@given(st.lists(st.sampled_from(list(ChannelState)), max_size=12))
def test_channel_states_only_follow_the_transition_table(moves: list[ChannelState]) -> None:
    chan = _channel()
    for move in moves:
        before = chan.state
        try:
            chan.set_state(move)
        except IllegalTransition:
            assert chan.state == before
        else:
            assert chan.state == move
    # A destroyed channel never comes back.
    if chan.state == ChannelState.CS_DESTROY:
        with pytest.raises(IllegalTransition):
            chan.set_state(ChannelState.CS_EXECUTE)


_word = st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=8)


@given(
    st.dictionaries(_word, _word, max_size=3),
    st.lists(
        st.lists(
            st.tuples(_word, st.dictionaries(_word, _word, max_size=2)), min_size=1, max_size=3
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_dial_strings_split_into_variables_groups_and_endpoints(
    global_vars: dict[str, str], groups: list[list[tuple[str, dict[str, str]]]]
) -> None:
    def leg(endpoint: str, variables: dict[str, str]) -> str:
        prefix = "[" + ",".join(f"{k}={v}" for k, v in variables.items()) + "]"
        return (prefix if variables else "") + f"user/{endpoint}"

    text = "|".join(",".join(leg(e, v) for e, v in group) for group in groups)
    if global_vars:
        text = "{" + ",".join(f"{k}={v}" for k, v in global_vars.items()) + "}" + text
    parsed_globals, parsed = parse_dialstring(text)
    assert parsed_globals == global_vars
    assert [[(t.endpoint, dict(t.variables)) for t in g] for g in parsed] == [
        [(f"user/{e}", v) for e, v in group] for group in groups
    ]


async def test_multiset_sets_several_variables_with_its_own_delimiter(
    pbx: DemoFreeSwitch, esl: ESLClient
) -> None:
    caller = await pbx.call("800", caller_num="5551234")
    uuid = caller.uniqueid
    await esl.wait_event("CHANNEL_PARK", Unique_ID=uuid)
    spaced = await esl.execute(uuid, "multiset", "lab_a=1 lab_b=two")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=spaced)
    piped = await esl.execute(uuid, "multiset", "^^|ringback=local_stream://moh|lab_c=x y")
    await esl.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=piped)
    assert await esl.api(f"uuid_getvar {uuid} lab_a") == "1"
    assert await esl.api(f"uuid_getvar {uuid} lab_b") == "two"
    assert await esl.api(f"uuid_getvar {uuid} ringback") == "local_stream://moh"
    assert await esl.api(f"uuid_getvar {uuid} lab_c") == "x y"


async def test_phones_register_and_unregister_as_mod_sofia_says_it() -> None:
    """sofia::register / sofia::unregister with sofia_reg.c's headers, and sofia_contact
    answering the contact or error/user_not_registered."""
    async with DemoFreeSwitch(password=PASSWORD) as pbx:
        esl = await connect(pbx, events="plain CUSTOM sofia::register sofia::unregister")
        try:
            assert await esl.api("sofia_contact */1001@127.0.0.1") == "error/user_not_registered"
            pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
            registered = await esl.wait_event("CUSTOM", Event_Subclass="sofia::register")
            assert (registered.get("from-user"), registered.get("profile-name")) == (
                "1001",
                "internal",
            )
            contact = await esl.api("sofia_contact internal/1001")
            assert contact.startswith("sofia/internal/sip:1001@127.0.0.1:")
            pbx.remove_phone("PJSIP/1001")
            gone = await esl.wait_event("CUSTOM", Event_Subclass="sofia::unregister")
            assert gone.get("from-user") == "1001" and gone.get("call-id") == registered.get(
                "call-id"
            )
            assert await esl.api("sofia_contact */1001") == "error/user_not_registered"
            assert (await esl.api("sofia_contact ")).startswith("-ERR Usage")
        finally:
            await esl.close()
