"""Live figures on a real MQTT broker (mosquitto), as a wallboard subscribed with paho-mqtt
sees them: callers waiting, agents talking, the day's answered and abandoned callers, the
daemon online and offline, and calls that go on when the broker goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from mqtt_broker import Broker, Message, Wallboard, client_certificate, running_broker
from test_campaigns import campaign

from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import AgentStateChanged, CampaignAttemptFailed, SurveyEnded
from callcenter.live.mqtt import event_json
from callcenter.testing import running_center, until


def _health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def _is(**want: Any) -> Any:
    def test(message: Message) -> bool:
        figures = message.json()
        return all(figures.get(k) == v for k, v in want.items())

    return test


def _today(**want: Any) -> Any:
    def test(message: Message) -> bool:
        today = message.json()["today"]
        return all(today.get(k) == v for k, v in want.items())

    return test


def mqtt_config(broker: Broker, **more: Any) -> dict[str, Any]:
    return {"mqtt": {"port": broker.port, "interval": 0.1, **more}}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_wallboard_sees_callers_wait_agents_talk_and_the_days_figures(
    tmp_path: Path, transport: str
) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = mqtt_config(broker, events=True)
        async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
            await board.wait_for("status", lambda m: m.text == "online")
            await board.wait_for("agents/1002", _is(state="available"))
            center.add_phone("PJSIP/1001", answer_after=None)
            center.add_phone("PJSIP/1002", answer_after=0.05)
            caller = await center.caller_presses("5551234", "2")
            assert await caller.wait_bridged(timeout=5) == "PJSIP/1002"
            talking = await board.wait_for("agents/1002", _is(state="on_call"))
            gave_up = await center.caller_presses(
                "5550000", "1"
            )  # sales: 1001 only, who never answers
            await gave_up.wait_moh(timeout=5)
            waiting = await board.wait_for("queues/sales", _is(waiting=1))
            await gave_up.hangup()
            await caller.hangup()
            await center.idle()
            sales = await board.wait_for("queues/sales", _today(abandoned=1))
            support = await board.wait_for("queues/support", _today(answered=1))
            bob = await board.wait_for("agents/1002", _today(calls=1))
            alice = await board.wait_for("agents/1001", lambda m: m.json()["today"]["missed"] > 0)
            # A 90-second break, as the engine reports one (monotonic clock).
            bus = center.daemon.bus
            bus.publish(AgentStateChanged(agent="1003", old="available", new="paused", mono=100.0))
            bus.publish(AgentStateChanged(agent="1003", old="paused", new="available", mono=190.0))
            carol = await board.wait_for("agents/1003", _today(paused_seconds=90))
            bus.publish(AgentStateChanged(agent="1003", old="on_call", new="wrap_up", mono=200.0))
            bus.publish(AgentStateChanged(agent="1003", old="wrap_up", new="available", mono=230.0))
            await board.wait_for("agents/1003", _today(wrapup_seconds=30))
            for call_id, score in (("s1", 4), ("s2", None)):
                answers = {"rating": str(score)} if score else {}
                bus.publish(
                    SurveyEnded(
                        call_id=call_id,
                        queue="support",
                        agent="1002",
                        flow="csat",
                        answers=answers,
                        score=score,
                        completed=score is not None,
                    )
                )
            rated = await board.wait_for("queues/support", _today(surveys=2))
            bob_rated = await board.wait_for("agents/1002", _today(surveys=2))
        await board.wait_for("status", lambda m: m.text == "offline")

    agent = talking.json()
    assert talking.retain is False, "live updates reach a subscriber as they happen"
    assert agent["call_id"] and agent["queues"] == ["support"]
    assert agent["since"].endswith("+00:00")
    assert waiting.json()["staffed"] >= 1
    assert sales.json()["waiting"] == 0
    assert sales.json()["today"]["offered"] == 1
    assert sales.json()["closed"] is None, "no opening hours: open"
    assert waiting.json()["expected_wait"] is None, "sales never took a call: nothing to go on"
    assert support.json()["expected_wait"] == 0, "Bob is free again"
    assert sales.json()["voicemails"] is None, "no mailbox: no messages to count"
    assert sales.json()["today"]["answered"] == 0
    assert sales.json()["today"]["service_level_percent"] is None, "none answered"
    assert sales.json()["today"]["service_level_offered_percent"] == 0.0, "one gave up"
    day = support.json()["today"]
    assert day["offered"] == 1
    assert day["answered_in_service_level"] == 1
    assert day["service_level_percent"] == 100.0
    assert day["service_level_offered_percent"] == 100.0
    assert 0 <= day["average_wait"] < 5

    assert bob.json()["today"]["talk_seconds"] >= 0 and bob.json()["today"]["missed"] == 0
    assert alice.json()["today"]["calls"] == 0
    assert carol.json()["today"]["date"] == support.json()["today"]["date"]
    assert rated.json()["today"]["survey_score"] == 4.0, "the mean of the scores given"
    assert bob_rated.json()["today"]["survey_score"] == 4.0
    surveyed = [m.json() for m in board.on("events/SurveyEnded")]
    assert [e["answers"] for e in surveyed] == [{"rating": "4"}, {}]

    started = [m.json() for m in board.on("events/CallStarted")]
    assert [e["caller_num"] for e in started] == ["5551234", "5550000"]
    (connected,) = [m.json() for m in board.on("events/AgentConnected")]
    assert connected["agent"] == "1002" and connected["queue"] == "support"
    assert connected["call_id"] == started[0]["call_id"] == agent["call_id"]
    assert connected["at"].endswith("+00:00")
    (abandoned,) = [m.json() for m in board.on("events/QueueAbandoned")]
    assert abandoned["call_id"] == started[1]["call_id"]
    assert len(board.on("events/CallEnded")) == 2
    assert all(not m.retain for m in board.on("events/CallEnded"))


async def test_a_wallboard_that_connects_later_gets_the_state_of_the_moment(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            center.add_phone("PJSIP/1001", answer_after=None)
            caller = await center.caller_presses("5550000", "1")
            await caller.wait_moh(timeout=5)
            with Wallboard(broker.port, name="first") as first:
                await first.wait_for("queues/sales", _is(waiting=1))
            with Wallboard(broker.port, name="late") as board:
                waiting = await board.wait_for("queues/sales", _is(waiting=1))
                status = await board.wait_for("status")
                agent = await board.wait_for("agents/1001")
            await caller.hangup()
            await center.idle()
        with Wallboard(broker.port, name="after-stop") as after:
            gone = await after.wait_for("status")
            assert gone.text == "offline" and gone.retain
    assert waiting.retain and status.retain and agent.retain
    assert status.text == "online"
    assert agent.json()["state"] in {"ringing", "available"}, "1001 is rung, and rings out"
    assert agent.json()["id"] == "1001"


async def test_calls_go_on_while_the_broker_is_down_and_the_figures_return_with_it(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            daemon = center.daemon
            await board.wait_for("status", lambda m: m.text == "online")
            center.add_phone("PJSIP/1002", answer_after=0.05)
            broker.stop()
            with structlog.testing.capture_logs() as logs:
                caller = await center.caller_talks_to_an_agent("5551234")
                record = await center.cdr(caller.uniqueid)
                await center.idle()
                health = await asyncio.to_thread(_health, daemon.api.port)
            assert record["agent"] and record["disposition"] == "ANSWERED"
            assert health["status"] == "ok", "a broker that is down is no reason to alert"
            assert health["mqtt"]["connected"] is False
            assert health["mqtt"]["error"]
            assert any(e["event"] == "mqtt_unreachable" for e in logs)
            broker.start()
            board.client.reconnect()
            await board.wait_for("status", lambda m: m.text == "online", timeout=30)
            support = await board.wait_for("queues/support", _today(answered=1), timeout=5)
            assert support.json()["today"]["offered"] == 1, "counted while the broker was away"
            health = await asyncio.to_thread(_health, daemon.api.port)
            assert health["mqtt"]["connected"] is True and health["mqtt"]["error"] is None
            text = await asyncio.to_thread(_metrics, daemon.api.port)
    assert "\ncallcenter_mqtt_connected 1\n" in text
    assert "callcenter_mqtt_dropped_total " in text


async def test_a_daemon_that_vanishes_is_shown_offline_by_its_last_will(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            publisher = center.daemon.mqtt
            assert publisher is not None
            await board.wait_for("status", lambda m: m.text == "online")
            link = publisher._protocol
            assert link is not None and link.transport is not None
            link.transport.abort()  # as a crash or a cut cable would: no DISCONNECT
            await board.wait_for("status", lambda m: m.text == "offline")
            statuses = [m.text for m in board.on("status")]
            await board.wait_for("status", lambda m: m.text == "online" and len(statuses) > 1)
    assert statuses[:2] == ["online", "offline"]


async def test_a_wrong_broker_password_is_shown_and_calls_go_on(tmp_path: Path) -> None:
    users = {"wallboard": "right"}
    with running_broker(tmp_path, users=users) as broker:
        config = mqtt_config(broker, username="wallboard", password="wrong")
        async with running_center(tmp_path, config=config) as center:
            daemon = center.daemon
            for _ in range(200):
                health = await asyncio.to_thread(_health, daemon.api.port)
                if health["mqtt"]["error"]:
                    break
                await asyncio.sleep(0.02)
            center.add_phone("PJSIP/1002", answer_after=0.05)
            caller = await center.caller_talks_to_an_agent("5551234")
            assert (await center.cdr(caller.uniqueid))["disposition"] == "ANSWERED"
    assert health["status"] == "ok"
    assert health["mqtt"]["connected"] is False
    assert "refused" in health["mqtt"]["error"]
    assert "not authorized" in health["mqtt"]["error"] or "password" in health["mqtt"]["error"]


async def test_the_broker_password_comes_from_the_environment(tmp_path: Path) -> None:
    users = {"wallboard": "s3cret"}
    with running_broker(tmp_path, users=users) as broker:
        config = mqtt_config(broker, username="wallboard", topic_prefix="site1/cc")
        environ = {"CALLCENTER_MQTT_PASSWORD": "s3cret"}
        async with running_center(tmp_path, config=config, environ=environ) as center:
            with Wallboard(broker.port, "site1/cc", auth=("wallboard", "s3cret")) as board:
                await board.wait_for("status", lambda m: m.text == "online")
                await board.wait_for("queues/support")
            assert "s3cret" not in repr(center.daemon.config.mqtt)


async def test_an_agent_added_by_a_reload_joins_the_wallboard(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            await board.wait_for("agents/1003", _is(state="logged_out"))
            settings = yaml.safe_load(center.config_path.read_text())
            settings["agents"]["1004"] = {"name": "Dave", "device": "PJSIP/1004"}
            settings["mqtt"]["events"] = True
            center.config_path.write_text(yaml.safe_dump(settings))
            needs_restart = await center.daemon.reload()
            dave = await board.wait_for("agents/1004")
    assert dave.json()["name"] == "Dave" and dave.json()["state"] == "logged_out"
    assert needs_restart == ["mqtt.events"], "the broker link is set up at the start"


class NotABroker:
    """A TCP server on a free port that answers an MQTT client as ``answer`` says."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read(1024)  # the CONNECT
        if self.answer is not None:
            writer.write(self.answer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):  # PINGREQs, never answered
                pass
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


async def _error(center: Any, want: str) -> str:
    publisher = center.daemon.mqtt
    for _ in range(400):
        if publisher.error and want in publisher.error:
            return str(publisher.error)
        await asyncio.sleep(0.02)
    raise AssertionError(f"error {publisher.error!r}, not {want!r}")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "no CONNACK within 0.3 s"),
        (b"\xf0\x00", "not MQTT from the broker: reserved packet type 15"),
    ],
)
async def test_a_server_that_is_not_a_broker_is_named_as_such(
    tmp_path: Path, answer: bytes | None, error: str
) -> None:
    async with NotABroker(answer) as port:
        config = {"mqtt": {"port": port, "connect_timeout": 0.3}}
        async with running_center(tmp_path, config=config) as center:
            assert await _error(center, error)
            assert center.daemon.mqtt is not None and not center.daemon.mqtt.connected


async def test_a_broker_that_stops_answering_pings_is_left_and_tried_again(
    tmp_path: Path,
) -> None:
    mute = NotABroker(b"\x20\x02\x00\x00")  # CONNACK: accepted; then silence
    async with mute as port:
        config = {"mqtt": {"port": port, "keepalive": 1}}
        async with running_center(tmp_path, config=config) as center:
            assert await _error(center, "the broker said nothing for 1.5 s")
            for _ in range(200):
                if mute.connections >= 2:
                    break
                await asyncio.sleep(0.02)
    assert mute.connections >= 2, "the daemon connected again"


async def test_over_tls_the_broker_is_checked_against_the_configured_authority(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path, tls=True) as broker:
        assert broker.ca_file is not None
        config = mqtt_config(broker, tls=True, ca_file=str(broker.ca_file))
        async with running_center(tmp_path, config=config) as center:
            with Wallboard(broker.port, ca_file=broker.ca_file) as board:
                await board.wait_for("status", lambda m: m.text == "online")
                await board.wait_for("queues/support")
        system_cas = mqtt_config(broker, tls=True)
        async with running_center(tmp_path, config=system_cas) as center:
            error = await _error(center, "certificate verify failed")
    assert "self-signed certificate in certificate chain" in error or "unable to get" in error


async def test_a_broker_asking_for_a_client_certificate_gets_the_configured_one(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path, tls=True, client_certificates=True) as broker:
        assert broker.ca_file is not None
        cert, key = client_certificate(tmp_path, "callcenter")
        board_cert = client_certificate(tmp_path, "wallboard")
        config = mqtt_config(
            broker, tls=True, ca_file=str(broker.ca_file), cert_file=str(cert), key_file=str(key)
        )
        async with running_center(tmp_path, config=config):
            with Wallboard(broker.port, ca_file=broker.ca_file, certificate=board_cert) as board:
                await board.wait_for("status", lambda m: m.text == "online")
                await board.wait_for("queues/support")
        without = mqtt_config(broker, tls=True, ca_file=str(broker.ca_file))
        async with running_center(tmp_path, config=without) as center:
            error = await _error(center, "")
            assert center.daemon.mqtt.health()["connected"] is False, error  # type: ignore[union-attr]
        (tmp_path / "garbage.pem").write_text("not a certificate\n")
        broken = {**config["mqtt"], "cert_file": str(tmp_path / "garbage.pem")}
        async with running_center(tmp_path, config={"mqtt": broken}) as center:
            error = await _error(center, "mqtt.cert_file")
    assert "garbage.pem" in error


def test_client_certificate_settings_that_cannot_work_are_config_errors() -> None:
    for mqtt, message in (
        ({"cert_file": "me.crt"}, "cert_file is only used with tls"),
        ({"tls": True, "key_file": "me.key"}, "key_file goes with cert_file"),
    ):
        with pytest.raises(ConfigError) as refused:
            load_config_text(yaml.safe_dump({"pbx": {"type": "asterisk"}, "mqtt": mqtt}))
        assert message in str(refused.value)


async def test_agents_and_queues_no_longer_configured_leave_the_wallboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import callcenter.live.mqtt as module

    monkeypatch.setattr(module, "STALE_AFTER", 0.2)
    with running_broker(tmp_path) as broker:
        # What a daemon with agent 9999 and queue "old" left on the broker.
        with Wallboard(broker.port, name="old-daemon") as old:
            for topic in ("callcenter/agents/9999", "callcenter/queues/old"):
                old.client.publish(
                    topic, b'{"state": "available"}', qos=1, retain=True
                ).wait_for_publish()
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            publisher = center.daemon.mqtt
            assert publisher is not None
            for _ in range(200):
                if publisher.connected:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            with Wallboard(broker.port, name="late") as board:
                await board.wait_for("agents/1001")
                await board.wait_for("queues/support")
                await asyncio.sleep(0.3)
    assert board.on("agents/9999") == [] and board.on("queues/old") == []


async def test_the_wallboard_shows_which_supervisor_listens_to_whom(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            idle = await board.wait_for("supervisors/2000")
            center.add_phone("PJSIP/1002", answer_after=0.05)
            sam = center.add_phone("PJSIP/2000", answer_after=0.05)
            caller = await center.caller_presses("5551234", "2")
            await caller.wait_bridged(timeout=5)
            switchboard = center.daemon.switchboard
            for _ in range(250):  # the daemon learns of the answer just after the bridge
                found = switchboard.agent_call("1002")
                if found is not None and found[1].agent_channel:
                    break
                await asyncio.sleep(0.02)
            monitoring = switchboard.monitoring
            await monitoring.monitor("2000", "1002", "listen")
            await sam.wait_answered(timeout=5)
            listening = await board.wait_for(
                "supervisors/2000",
                lambda m: (m.json()["monitoring"] or {}).get("state") == "monitoring",
            )
            await monitoring.stop("2000")
            done = await board.wait_for(
                "supervisors/2000", lambda m: m.json()["monitoring"] is None and m is not idle
            )
            await caller.hangup()
    assert idle.json() == {"id": "2000", "name": "Sam", "monitoring": None}
    assert listening.json()["monitoring"] == {
        "agent": "1002",
        "call_id": caller.uniqueid,
        "mode": "listen",
        "state": "monitoring",
    }
    assert done.json()["monitoring"] is None


async def test_the_wallboard_shows_a_switch_ops_flip_and_where_a_hot_desker_sits(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = {
            **mqtt_config(broker),
            "ivr": {"switches": {"storm": "Closed for the storm"}},
            "agents": {"1003": {"hot_desk": True}},
        }
        async with running_center(tmp_path, config=config) as center:
            off = await board.wait_for("switches/storm", _is(on=False))
            center.daemon.switchboard.flip("storm", True, via="api")
            on = await board.wait_for("switches/storm", _is(on=True))
            center.daemon.router.login("1003", via="test", device="PJSIP/1010")
            carol = await board.wait_for("agents/1003", _is(state="available"))
            center.daemon.switchboard.roster.join_queue("1003", "sales", via="api")
            moved = await board.wait_for("agents/1003", _is(queues=["sales"]))
    assert off.json()["description"] == "Closed for the storm"
    assert moved.json()["state"] == "available", "Carol's queues follow agent join"
    assert (on.json()["via"], on.json()["since"] is not None) == ("api", True)
    assert (carol.json()["device"], carol.json()["hot_desking"]) == ("PJSIP/1010", True)


async def test_the_wallboard_follows_a_campaign_from_paused_to_finished(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("number,id\n5551001,ada\n0900123456,premium\n")
    (tmp_path / "dnc.txt").write_text("")
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = {**campaign(enabled=False), **mqtt_config(broker)}
        async with running_center(tmp_path, config=config) as center:
            paused = await board.wait_for("campaigns/spring", _is(state="paused"))
            center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
            center.add_phone("PJSIP/1001", answer_after=0.05)
            center.daemon.campaigns.by_id["spring"].resume("test")
            done = await board.wait_for("campaigns/spring", _is(state="finished", answered=1))
            alice = await board.wait_for("agents/1001", _today(calls=1))
            await center.idle(timeout=10)
            await asyncio.sleep(0.3)  # figures go out every mqtt.interval (0.1 s)
            sales = [m.json()["today"] for m in board.on("queues/sales")]
    assert sales and all(d["offered"] == d["answered"] == 0 for d in sales), "no inbound caller"
    assert alice.json()["today"]["calls"] == 1, "the agent's work counts"
    assert (paused.json()["leads"], paused.json()["pending"], paused.json()["why"]) == (
        2,
        2,
        "config",
    )
    assert (done.json()["skipped"], done.json()["dialled"], done.json()["queue"]) == (
        1,
        1,
        "sales",
    )


async def test_an_agents_desktop_sees_the_lead_a_preview_campaign_shows_them(
    tmp_path: Path,
) -> None:
    """Retained on the agent's topic while Alice decides; gone once she has."""
    (tmp_path / "leads.csv").write_text("number,id,name\n5551001,ada,Ada Lovelace\n")
    (tmp_path / "dnc.txt").write_text("")
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = {**campaign(mode="preview", preview_seconds=30), **mqtt_config(broker)}
        async with running_center(tmp_path, config=config) as center:
            center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
            center.add_phone("PJSIP/1001", answer_after=0.05)
            shown = await board.wait_for("agents/1001", lambda m: m.json()["preview"] is not None)
            center.daemon.switchboard.dialler.preview_decision("1001", "dial")
            gone = await board.wait_for("agents/1001", lambda m: m.json()["preview"] is None)
            await center.idle(timeout=10)
    assert shown.json()["preview"] == {
        "campaign": "spring",
        "lead": "ada",
        "number": "5551001",
        "data": {"name": "Ada Lovelace"},
    }
    assert gone.json()["preview"] is None


def test_every_time_in_an_mqtt_event_is_iso_8601() -> None:
    at = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
    event = CampaignAttemptFailed(
        campaign="spring",
        lead="ada",
        number="5551001",
        attempt=1,
        reason="busy",
        final=False,
        retry_at=at + timedelta(hours=1),
        at=at,
    )
    sent = json.loads(event_json(event))
    assert (sent["at"], sent["retry_at"]) == (
        "2026-12-05T09:30:00+00:00",
        "2026-12-05T10:30:00+00:00",
    )
    assert (sent["event"], sent["reason"], sent["final"]) == (
        "CampaignAttemptFailed",
        "busy",
        False,
    )


async def test_an_agents_desktop_sees_the_caller_on_hold_and_whom_the_agent_consults(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            center.add_phone("PJSIP/1001", answer_after=0.05)
            sam = center.add_phone("PJSIP/2000", answer_after=0.05)
            caller = await center.caller_presses("5550133", "1")
            await caller.wait_bridged(timeout=5)
            await board.wait_for("agents/1001", _is(state="on_call"))
            switchboard = center.daemon.switchboard
            await switchboard.hold("1001")
            held = await board.wait_for("agents/1001", lambda m: m.json()["on_hold"])
            await switchboard.unhold("1001")
            await board.wait_for("agents/1001", lambda m: not m.json()["on_hold"])
            await switchboard.consult("1001", "2000")
            await sam.wait_answered(timeout=5)
            talking = await board.wait_for(
                "agents/1001", lambda m: (m.json()["consulting"] or {}).get("state") == "talking"
            )
            await switchboard.consult_complete("1001")
            done = await board.wait_for("agents/1001", lambda m: m.json()["consulting"] is None)
            await caller.hangup()
            await center.idle(timeout=10)
    assert held.json()["consulting"] is None
    assert talking.json()["consulting"] == {"to": "2000", "state": "talking"}
    assert done.json()["on_hold"] is False


async def test_a_person_an_agent_dials_is_no_caller_of_the_queue_on_the_wallboard(
    tmp_path: Path,
) -> None:
    dials = {"acd": {"dial_out": "PJSIP/${number}", "dial_out_allow": ["_555XXXX"]}}
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = {**mqtt_config(broker), **dials}
        async with running_center(tmp_path, config=config) as center:
            await board.wait_for("agents/1001", _is(state="available"))
            center.add_phone("PJSIP/5550419", answer_after=0.1, hangup_after=0.3)
            leg = await center.pbx.call("*775550419", caller_num="1001")
            await leg.wait_ended(timeout=5)
            await center.idle()
            alice = await board.wait_for("agents/1001", _today(calls=1))
            await asyncio.sleep(0.5)  # a few publishing rounds (interval 0.1 s)
            sales = board.latest("queues/sales")
    assert alice.json()["today"]["calls"] == 1, "her call counts as hers"
    assert sales is not None
    assert (sales.json()["today"]["offered"], sales.json()["today"]["answered"]) == (0, 0)


async def test_a_wallboard_on_mqtt_shows_the_notices_standing_even_connecting_later(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            notice = center.daemon.notices.post("Fire drill at 16:00", by="cli")
            with Wallboard(broker.port) as first:
                await first.wait_for("notices", lambda m: bool(m.json()["notices"]))
            with Wallboard(broker.port) as board:
                shown = await board.wait_for("notices")
                center.daemon.notices.take_down(notice.id, by="cli")
                gone = await board.wait_for("notices", lambda m: m.json()["notices"] == [])
    (standing,) = shown.json()["notices"]
    assert (standing["text"], standing["by"], standing["teams"]) == (
        "Fire drill at 16:00",
        "cli",
        [],
    )
    assert shown.retain, "a wallboard connecting later gets it at once"
    assert gone.json() == {"notices": []}


async def test_a_queue_and_an_agent_added_at_run_time_then_removed_leave_the_wallboard(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path) as broker:
        async with running_center(tmp_path, config=mqtt_config(broker)) as center:
            publisher = center.daemon.mqtt
            assert publisher is not None
            for _ in range(200):
                if publisher.connected:
                    break
                await asyncio.sleep(0.02)
            with Wallboard(broker.port, name="floor") as board:
                await center.api("POST", "/queues", {"queue": "vip", "agents": ["1002"]})
                await board.wait_for("queues/vip")
                await center.api("POST", "/queues/vip/remove", {})
                await board.wait_for("queues/vip", lambda m: m.payload == b"")
                zoe = {"agent": "1010", "name": "Zoe", "device": "PJSIP/1010"}
                await center.api("POST", "/roster", zoe)
                await board.wait_for("agents/1010")
                await center.api("POST", "/roster/1010/remove", {})
                await board.wait_for("agents/1010", lambda m: m.payload == b"")
            with Wallboard(broker.port, name="late") as late:
                await late.wait_for("queues/support")
                await asyncio.sleep(0.3)
    assert late.on("queues/vip") == [], "nothing retained for a queue that is gone"
    assert late.on("agents/1010") == [], "nor for an agent"


async def test_an_agents_desktop_sees_her_place_in_line_for_a_break(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker, Wallboard(broker.port) as board:
        config = {
            **mqtt_config(broker),
            "teams": {"night": {"max_paused": 1, "break_line": True}},
            "agents": {"1002": {"team": "night"}, "1003": {"team": "night", "logged_in": True}},
        }
        async with running_center(tmp_path, config=config) as center:
            await board.wait_for("agents/1003", _is(state="available", break_line=None))
            await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
            await center.api("POST", "/agents/1003/pause", {"reason": "break"})
            lined = await board.wait_for("agents/1003", _is(break_line=1))
            before = len(board.on("agents/1003"))
            await center.api("POST", "/agents/1003/unpause", {})
            await until(
                lambda: any(
                    m.json()["break_line"] is None for m in board.on("agents/1003")[before:]
                ),
                timeout=10,
            )
            left = board.on("agents/1003")[-1]
    assert lined.json()["state"] == "available"
    assert (left.json()["state"], left.json()["break_line"]) == ("available", None)
