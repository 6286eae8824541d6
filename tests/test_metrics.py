"""Live figures as Prometheus scrapes them: ``GET /metrics`` parses with Prometheus's own
client parser, counts what happened to callers (answered, within the service level,
abandoned, rung out) and shows the queues, agents, PBX link and records of the moment."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from callcenter.events import (
    AgentConnected,
    AgentRingFailed,
    CallEnded,
    CallStarted,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    SurveyEnded,
    TalkEnded,
)
from callcenter.live.metrics import Metrics
from callcenter.live.today import Today
from callcenter.testing import running_center

T0 = datetime(2024, 5, 6, 9, 0, 0, tzinfo=UTC)


def at(t: float) -> dict[str, Any]:
    return {"at": T0 + timedelta(seconds=t), "mono": 100.0 + t}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, as Prometheus's parser reads it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def a_call(call_id: str, wait: float, *, answered: bool) -> list[Any]:
    events: list[Any] = [
        CallStarted(
            call_id=call_id,
            channel="PJSIP/x-1",
            caller_num="555",
            caller_name="",
            dialed="800",
            context="c",
            **at(0),
        ),
        QueueJoined(call_id=call_id, queue="support", position=1, **at(1)),
    ]
    if answered:
        events += [
            AgentConnected(
                call_id=call_id,
                queue="support",
                agent="1001",
                peer_channel="PJSIP/1001-1",
                wait_seconds=wait,
                ring_seconds=1,
                **at(1 + wait),
            ),
            TalkEnded(
                call_id=call_id, agent="1001", talk_seconds=90, hung_up_by="caller", **at(99)
            ),
        ]
    else:
        events.append(
            QueueAbandoned(call_id=call_id, queue="support", position=1, wait_seconds=wait, **at(9))
        )
    events.append(
        CallEnded(call_id=call_id, hung_up_by="caller", cause=16, cause_name="N", **at(99))
    )
    return events


SNAPSHOT = {
    "agents": [{"state": "available"}, {"state": "on_call"}, {"state": "on_call"}],
    "queues": [
        {"name": "support", "waiting": 3, "longest_wait": 42.5, "available": 1, "staffed": 3},
        {"name": 'odd"name\\', "waiting": 0, "longest_wait": 0, "available": 0, "staffed": 0},
    ],
}


def test_a_wrong_number_that_hangs_up_at_once_is_a_short_abandon_on_the_board_too() -> None:
    """``short_abandon: 5``: the caller who gave up after 2 s is counted apart, in
    Prometheus and in the day's figures (wallboard, MQTT), and the service level of those
    whose wait is over leaves them out; the one after 12 s is an abandon."""
    short = {"support": 5.0}.get
    metrics = Metrics(lambda queue: 20.0, lambda queue: short(queue, 0.0))
    today = Today(lambda queue: 20.0, "UTC", lambda queue: short(queue, 0.0))
    events = [
        *a_call("a", 4.0, answered=True),
        *a_call("b", 2.0, answered=False),
        *a_call("c", 12.0, answered=False),
    ]
    for event in events:
        metrics.on_event(event)
        today.on_event(event)
    got = samples(
        metrics.render(SNAPSHOT, calls_active=0, monitoring=0, pbx_connected=True, records={})
    )
    q = (("queue", "support"),)
    day = today.queue("support")
    assert got[("callcenter_queue_abandoned_total", q)] == 1
    assert got[("callcenter_queue_short_abandoned_total", q)] == 1
    assert (day.offered, day.abandoned, day.short_abandoned) == (3, 1, 1)
    assert day.service_level_offered_percent == 50.0, "1 in time of the 2 who meant to call"


def test_counts_answered_callers_the_service_level_abandons_and_wait_buckets() -> None:
    metrics = Metrics(lambda queue: 20.0)
    events = [
        *a_call("a", 4.0, answered=True),
        *a_call("b", 45.0, answered=True),
        *a_call("c", 12.0, answered=False),
        AgentRingFailed(
            call_id="b", queue="support", agent="1002", status="NOANSWER", ring_seconds=15, **at(5)
        ),
        QueueExited(call_id="d", queue="support", reason="timeout", wait_seconds=300, **at(300)),
    ]
    for event in events:
        metrics.on_event(event)
    text = metrics.render(
        SNAPSHOT, calls_active=2, monitoring=1, pbx_connected=True, records={"ok": True}
    )
    got = samples(text)
    q = (("queue", "support"),)
    assert got[("callcenter_calls_started_total", ())] == 3
    assert got[("callcenter_calls_ended_total", (("hung_up_by", "caller"),))] == 3
    assert got[("callcenter_queue_joined_total", q)] == 3
    assert got[("callcenter_queue_answered_total", q)] == 2
    assert got[("callcenter_queue_answered_in_service_level_total", q)] == 1, "4 s, not 45 s"
    assert got[("callcenter_queue_abandoned_total", q)] == 1
    assert (
        got[("callcenter_queue_exited_total", (("queue", "support"), ("reason", "timeout")))] == 1
    )
    ring = (("queue", "support"), ("status", "NOANSWER"))
    assert got[("callcenter_agent_ring_failed_total", ring)] == 1
    wait = "callcenter_queue_wait_seconds"
    assert got[(f"{wait}_bucket", (("le", "5.0"), ("queue", "support")))] == 1
    assert got[(f"{wait}_bucket", (("le", "60.0"), ("queue", "support")))] == 2
    assert got[(f"{wait}_bucket", (("le", "+Inf"), ("queue", "support")))] == 2
    assert got[(f"{wait}_sum", q)] == 49 and got[(f"{wait}_count", q)] == 2
    assert got[("callcenter_talk_seconds_count", q)] == 2
    assert got[("callcenter_queue_abandon_wait_seconds_count", q)] == 1
    assert got[("callcenter_queue_waiting", q)] == 3
    assert got[("callcenter_queue_longest_wait_seconds", q)] == 42.5
    assert got[("callcenter_queue_waiting", (("queue", 'odd"name\\'),))] == 0, "escaped"
    assert got[("callcenter_agents", (("state", "on_call"),))] == 2
    assert got[("callcenter_calls_active", ())] == 2
    assert got[("callcenter_supervisors_monitoring", ())] == 1
    assert got[("callcenter_pbx_connected", ())] == 1
    assert got[("callcenter_records_ok", ())] == 1


def test_post_call_surveys_give_a_count_and_a_score_sum_per_queue_and_agent() -> None:
    metrics = Metrics(lambda queue: 20.0)
    for call_id, agent, score in (("a", "1001", 4), ("b", "1001", None), ("c", "1002", 2)):
        satisfied = None if score is None else score >= 4
        metrics.on_event(
            SurveyEnded(
                call_id=call_id, queue="support", agent=agent, flow="csat", score=score,
                satisfied=satisfied, **at(9),
            )
        )  # fmt: skip
    got = samples(
        metrics.render(SNAPSHOT, calls_active=0, monitoring=0, pbx_connected=True, records=None)
    )
    alice = (("agent", "1001"), ("queue", "support"))
    assert got[("callcenter_surveys_total", alice)] == 2
    assert got[("callcenter_surveys_scored_total", alice)] == 1
    assert got[("callcenter_survey_score_total", alice)] == 4
    assert got[("callcenter_surveys_satisfied_total", alice)] == 1
    assert got[("callcenter_survey_score_total", (("agent", "1002"), ("queue", "support")))] == 2


def test_a_daemon_that_took_no_call_yet_still_shows_every_family() -> None:
    text = Metrics(lambda queue: 20.0).render(
        {"agents": [], "queues": []},
        calls_active=0,
        monitoring=0,
        pbx_connected=False,
        records=None,
    )
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"callcenter_calls_started", "callcenter_queue_wait_seconds"} <= names
    assert samples(text)[("callcenter_pbx_connected", ())] == 0


def _scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_prometheus_scrapes_what_callers_and_agents_did(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_presses("5551234", "2")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1002"
        gave_up = await center.caller_presses("5550000", "1")  # sales: 1001 only, who never answers
        await gave_up.wait_moh(timeout=5)
        await asyncio.sleep(0.2)
        kind, during = await asyncio.to_thread(_scrape, center.daemon.api.port)
        await gave_up.hangup()
        await caller.hangup()
        await center.idle()
        _, after = await asyncio.to_thread(_scrape, center.daemon.api.port)
    assert kind.startswith("text/plain; version=0.0.4")
    now = samples(during)
    assert now[("callcenter_calls_active", ())] == 2
    assert now[("callcenter_queue_waiting", (("queue", "sales"),))] == 1
    assert now[("callcenter_agents", (("state", "on_call"),))] == 1
    assert now[("callcenter_pbx_connected", ())] == 1
    assert now[("callcenter_records_ok", ())] == 1
    done = samples(after)
    assert done[("callcenter_queue_answered_total", (("queue", "support"),))] == 1
    assert done[("callcenter_queue_answered_in_service_level_total", (("queue", "support"),))] == 1
    assert done[("callcenter_queue_abandoned_total", (("queue", "sales"),))] == 1
    rung_out = (("queue", "support"), ("status", "NOANSWER"))
    assert done[("callcenter_agent_ring_failed_total", rung_out)] >= 1, "1001 did not answer"
    assert done[("callcenter_calls_active", ())] == 0
    assert done[("callcenter_agent_calls_total", (("agent", "1002"),))] == 1
    assert done[("callcenter_agent_talk_seconds_total", (("agent", "1002"),))] > 0
    assert done[("callcenter_agent_missed_total", (("agent", "1001"),))] >= 1
    assert ("callcenter_agent_calls_total", (("agent", "1001"),)) not in done


def _request(port: int, method: str, path: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=b"{}" if method == "POST" else None, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_a_metrics_listener_for_a_remote_prometheus_serves_nothing_else(
    tmp_path: Path,
) -> None:
    config = {"api": {"metrics_host": "127.0.0.1", "metrics_port": 0}}
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        assert daemon.metrics_api is not None
        port = daemon.metrics_api.port
        assert port not in (0, daemon.api.port)
        _, text = await asyncio.to_thread(_scrape, port)
        assert samples(text)[("callcenter_pbx_connected", ())] == 1
        assert await asyncio.to_thread(_request, port, "GET", "/health") == 200
        assert await asyncio.to_thread(_request, port, "GET", "/status") == 404
        assert await asyncio.to_thread(_request, port, "POST", "/agents/1001/logout") == 404
        assert daemon.router.agents["1001"].state != "logged_out", "no agent control there"
        assert await asyncio.to_thread(_request, daemon.api.port, "GET", "/status") == 200
    with pytest.raises(OSError):  # closed at stop
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_without_a_metrics_host_there_is_one_listener(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        assert center.daemon.metrics_api is None
