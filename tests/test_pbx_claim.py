"""One daemon per PBX: the claim a daemon keeps in a global variable of the PBX."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config import load_config
from callcenter.daemon import Daemon
from callcenter.demopbx.freeswitch import FAILOVER_PROMPT, DemoFreeSwitch
from callcenter.demopbx.fs_channels import prompt_name
from callcenter.errors import ListenError, PBXClaimed
from callcenter.pbx.asterisk.driver import OWNER_VARIABLE as ASTERISK_OWNER
from callcenter.pbx.claim import ClaimMark, PBXClaim, pid_space, process_identity
from callcenter.pbx.freeswitch.driver import OWNER_VARIABLE as FREESWITCH_OWNER
from callcenter.testing import Center, Transport, running_center, until

NOW = 1_800_000_000.0

FAILOVER = prompt_name(FAILOVER_PROMPT)


class Variable:
    """A PBX global variable, as the claim reads and writes it."""

    def __init__(self, value: str = "") -> None:
        self.value = value
        self.writes: list[str] = []

    async def read(self) -> str:
        return self.value

    async def write(self, value: str) -> None:
        self.value = value
        self.writes.append(value)


def claim(host: str = "pbx-a", pid: int = 4242, at: float = NOW) -> PBXClaim:
    return PBXClaim(5.0, host=host, pid=pid, clock=lambda: at)


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------------------- the mark


@given(
    owner=st.text("0123456789abcdef", min_size=1, max_size=32),
    host=st.text(st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), min_size=1)
    .map(str.strip)
    .filter(bool),
    pid=st.integers(1, 2**22),
    started=st.text("0123456789", max_size=12),
    stamp=st.integers(0, 2**33),
    refresh=st.sampled_from([0.5, 1.0, 5.0, 60.0]),
)
def test_a_mark_reads_back_as_written(
    owner: str, host: str, pid: int, started: str, stamp: int, refresh: float
) -> None:
    mark = ClaimMark(owner, host, pid, started, float(stamp), refresh)
    assert ClaimMark.parse(mark.text()) == mark


@pytest.mark.parametrize("text", ["", "0", "a|b|c|d", "a|b|not-a-pid|1|5", "|h|1|1|5", "x" * 80])
def test_a_value_that_is_no_mark_is_nobodys_claim(text: str) -> None:
    assert ClaimMark.parse(text) is None


def test_a_mark_is_stale_after_three_missed_refreshes_or_once_its_process_here_is_gone() -> None:
    other_host = ClaimMark("b", "pbx-b", 99, "", NOW, 5.0)
    assert other_host.live(NOW + 15, host="pbx-a")
    assert not other_host.live(NOW + 16.5, host="pbx-a")
    me, identity = os.getpid(), process_identity(os.getpid())
    space, _, started = identity.partition(":")
    assert space == pid_space() and started.isdigit()
    # This very process: live while one of its daemons holds the claim (below).
    assert not ClaimMark("b", "pbx-a", me, identity, NOW, 5.0).live(NOW, host="pbx-a")
    assert not ClaimMark("b", "pbx-a", dead_pid(), "", NOW, 5.0).live(NOW, host="pbx-a")
    # A container restarted after a crash: its new PID 1 is not the process that wrote it.
    earlier = f"{space}:{int(started) - 1}"
    assert not ClaimMark("b", "pbx-a", me, earlier, NOW, 5.0).live(NOW, host="pbx-a")
    # A container on the host's network shares its name, not its pids: left alone.
    elsewhere = f"{int(space) + 1}:{started}"
    assert ClaimMark("b", "pbx-a", dead_pid(), elsewhere, NOW, 5.0).live(NOW, host="pbx-a")


# ---------------------------------------------------------------------------- the claim


async def test_a_free_pbx_is_claimed_and_a_fresh_foreign_mark_refuses_the_start() -> None:
    variable = Variable()
    first = claim()
    await first.acquire(variable.read, variable.write)
    assert ClaimMark.parse(variable.value) == first.mark()
    second = claim(host="pbx-b", at=NOW + 10)
    with pytest.raises(PBXClaimed, match=r"pid 4242 on host pbx-a \(mark written 10 s ago\)"):
        await second.acquire(variable.read, variable.write)
    assert ClaimMark.parse(variable.value) == first.mark(), "left as it was"
    same_host = claim(pid=dead_pid(), at=NOW + 17)
    await same_host.acquire(variable.read, variable.write)
    assert ClaimMark.parse(variable.value) == same_host.mark(), "three refreshes missed"


async def test_a_daemon_stopped_in_this_process_frees_the_pbx_though_its_mark_stays() -> None:
    """Tests and ``callcenter soak`` stop a daemon and start another in one process: the
    first one's stop may come while the PBX link is down, leaving its mark on the PBX.
    Its pid still runs, but no daemon of it holds the claim any more."""
    variable = Variable()
    first = PBXClaim(5.0)
    await first.acquire(variable.read, variable.write)
    second = PBXClaim(5.0)
    with pytest.raises(PBXClaimed, match=rf"pid {os.getpid()} on host "):
        await second.acquire(variable.read, variable.write)
    held = variable.value
    first.let_go()  # its stop, the PBX out of reach
    assert variable.value == held, "the mark is still on the PBX"
    await second.acquire(variable.read, variable.write)
    mark = ClaimMark.parse(variable.value)
    assert mark is not None and mark.owner == second.owner
    await second.release(variable.read, variable.write)
    assert variable.value == ""


class Refreshed(Variable):
    """A mark its daemon keeps writing: every read after the first finds a newer one."""

    def __init__(self, mark: ClaimMark) -> None:
        super().__init__(mark.text())
        self.mark = mark
        self.reads = 0

    async def read(self) -> str:
        self.reads += 1
        if self.reads > 1:
            self.mark = dataclasses.replace(self.mark, stamp=self.mark.stamp + 1)
            self.value = self.mark.text()
        return self.value


async def test_a_stale_looking_mark_of_another_host_is_taken_only_if_it_stays_still() -> None:
    """Its host's clock may run ahead: a mark still being written is a daemon still there,
    whatever its time says. One of its refreshes later it is read again."""
    old = ClaimMark("b", "pbx-b", 7, "", NOW - 3600, 0.05)
    still = Variable(old.text())
    taker = claim(at=NOW)
    await taker.acquire(still.read, still.write)
    assert ClaimMark.parse(still.value) == taker.mark()
    alive = Refreshed(old)
    with pytest.raises(PBXClaimed, match="pid 7 on host pbx-b"):
        await claim(at=NOW).acquire(alive.read, alive.write)
    assert alive.reads == 2 and not alive.writes


async def test_a_refresh_that_finds_another_daemons_mark_says_so_once_and_leaves_it() -> None:
    variable = Variable()
    ours = claim()
    await ours.acquire(variable.read, variable.write)
    theirs = claim(host="pbx-b", pid=7)
    variable.value = theirs.mark().text()
    with structlog.testing.capture_logs() as logs:
        assert await ours.refresh(variable.read, variable.write) == theirs.mark()
        assert await ours.refresh(variable.read, variable.write) == theirs.mark()
    assert [e["event"] for e in logs] == ["pbx_claimed_by_another_daemon"]
    assert "pid 7 on host pbx-b" in logs[0]["other"]
    assert ClaimMark.parse(variable.value) == theirs.mark()
    await ours.release(variable.read, variable.write)
    assert ClaimMark.parse(variable.value) == theirs.mark(), "not ours to clear"
    variable.value = ""
    assert await ours.refresh(variable.read, variable.write) is None
    assert ClaimMark.parse(variable.value) == ours.mark() and ours.taken_by is None
    await ours.release(variable.read, variable.write)
    assert variable.value == ""


# ---------------------------------------------------------------------------- two daemons


def second_daemon(center: Center, tmp_path: Path) -> Daemon:
    """Another daemon on the same PBX, with its own record database and ports."""
    settings = yaml.safe_load(center.config_path.read_text())
    settings["records"]["cdr_path"] = str(tmp_path / "second" / "cdr.sqlite3")
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    environ = center.daemon.environ
    return Daemon(load_config(path, environ=environ), config_path=path, environ=environ)


def owner_mark(center: Center) -> ClaimMark | None:
    if isinstance(center.pbx, DemoFreeSwitch):
        return ClaimMark.parse(center.pbx.global_vars.get(FREESWITCH_OWNER, ""))
    return ClaimMark.parse(center.pbx.global_vars.get(ASTERISK_OWNER, ""))


def set_owner_mark(center: Center, mark: ClaimMark) -> None:
    name = FREESWITCH_OWNER if isinstance(center.pbx, DemoFreeSwitch) else ASTERISK_OWNER
    center.pbx.global_vars[name] = mark.text()


async def a_caller_reaches_alice(center: Center, number: str) -> None:
    """A caller from ``number`` presses 1 and talks to Alice (1001): the daemon takes calls."""
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=5)
    await caller.press("1")
    assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
    await caller.hangup()
    await caller.wait_ended(timeout=5)


@pytest.mark.parametrize("transport", ["asyncagi", "esl-inbound"])
async def test_a_second_daemon_on_the_same_pbx_refuses_to_start_and_takes_over_once_free(
    tmp_path: Path, transport: Transport
) -> None:
    """Two daemons would both take every call (AsyncAGI and FreeSWITCH park show each new
    call to both). The second names the first and starts nothing; once the first stopped,
    it starts and serves callers."""
    async with running_center(tmp_path / "first", transport=transport) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        first = owner_mark(center)
        assert first is not None and first.pid == os.getpid()
        second = second_daemon(center, tmp_path)
        with pytest.raises(PBXClaimed, match=rf"pid {os.getpid()} on host "):
            await second.start()
        caller = await center.pbx.call("800", caller_num="5550051")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.hangup()
        await caller.wait_ended(timeout=5)
        assert not second.switchboard.active
        kept = owner_mark(center)
        # Its stamp may have moved on meanwhile: the first daemon refreshes its own mark.
        assert kept is not None and (kept.owner, kept.pid) == (first.owner, first.pid), (
            "the first one's mark is left alone"
        )

        await center.daemon.stop()
        assert owner_mark(center) is None, "a clean stop clears the mark"
        await second.start()
        try:
            taken = owner_mark(center)
            assert taken is not None and taken.owner != first.owner
            await a_caller_reaches_alice(center, "5550052")
        finally:
            await second.stop()
        await center.start_again()


@pytest.mark.parametrize("transport", ["fastagi", "esl-outbound"])
async def test_a_daemon_restarted_after_a_crash_on_the_same_host_takes_its_pbx_back_at_once(
    tmp_path: Path, transport: Transport
) -> None:
    """The crashed process left its mark, still fresh. It names a pid of this host that no
    longer runs, or (a container's PID 1 restarted) the same pid with another start time:
    either way the restart need not wait three refreshes."""
    host = PBXClaim(5.0).host
    me = os.getpid()
    space, _, started = process_identity(me).partition(":")
    earlier = f"{space}:{int(started) - 1}"
    crashes = [
        ClaimMark("c0ffee", host, dead_pid(), "", time.time(), 5),
        ClaimMark("c0ffee", host, me, earlier, time.time(), 5),
    ]
    async with running_center(tmp_path, transport=transport) as center:
        for crashed in crashes:
            await center.daemon.stop()
            set_owner_mark(center, crashed)
            await center.start_again()
            mark = owner_mark(center)
            assert mark is not None and (mark.pid, mark.owner) == (
                me,
                center.daemon.pbx.claim_keeper.owner,
            )
            caller = await center.pbx.call("800", caller_num="5550053")
            await caller.wait_for_prompt("welcome-menu", timeout=5)
            await caller.hangup()
            await caller.wait_ended(timeout=5)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_running_daemon_writes_its_mark_again_at_every_refresh(
    tmp_path: Path, transport: Transport
) -> None:
    """A mark that is gone (a restarted Asterisk forgets its globals) is back within one
    refresh, so a daemon started afterwards is still refused."""
    config = {"pbx": {"claim_refresh": 0.2}}
    async with running_center(tmp_path, transport=transport, config=config) as center:
        first = owner_mark(center)
        assert first is not None
        name = FREESWITCH_OWNER if isinstance(center.pbx, DemoFreeSwitch) else ASTERISK_OWNER
        del center.pbx.global_vars[name]
        async with asyncio.timeout(3):
            while owner_mark(center) is None:
                await asyncio.sleep(0.05)
        again = owner_mark(center)
        assert again is not None and (again.owner, again.refresh) == (first.owner, 0.2)


@pytest.mark.parametrize("transport", ["asyncagi", "esl-inbound"])
async def test_a_daemon_whose_pbx_another_daemon_took_over_stops_and_says_so(
    tmp_path: Path, transport: Transport
) -> None:
    """Cut off from its PBX for three refreshes, a daemon finds on its return that a standby
    took over (here: that daemon's mark appears): it stops, leaving the mark alone, and
    ``callcenter run`` exits 4 with the reason."""
    config = {"pbx": {"claim_refresh": 0.2}}
    async with running_center(tmp_path, transport=transport, config=config) as center:
        daemon = center.daemon
        running = asyncio.create_task(daemon.run_until_signalled())
        standby = ClaimMark("5ca1ab1e", "pbx-b", 4243, "", time.time(), 5.0)

        async def standby_keeps_its_mark() -> None:
            # As a standby that took over does: once only, the mark could land between
            # the daemon's read of the global and its own refresh, and be overwritten.
            # It stops once the daemon has seen it, so that the daemon's way out is what
            # leaves the mark as it is.
            while daemon.exit_error is None:
                set_owner_mark(center, standby)
                await asyncio.sleep(0.05)

        keeper = asyncio.create_task(standby_keeps_its_mark())
        try:
            with structlog.testing.capture_logs() as logs:
                await asyncio.wait_for(running, 5)
        finally:
            keeper.cancel()
        assert daemon.exit_error is not None
        assert "another callcenter daemon took this PBX over: pid 4243 on host pbx-b" in str(
            daemon.exit_error
        )
        assert owner_mark(center) == ClaimMark.parse(standby.text()), "the winner's mark stays"
        if not isinstance(center.pbx, DemoFreeSwitch):
            beat = center.pbx.global_vars.get("CALLCENTER_HEARTBEAT", "0")
            assert int(beat) > 0, "the winner's heartbeat is not zeroed on the way out"
        assert [e["event"] for e in logs if e["log_level"] == "error"][:2] == [
            "pbx_claimed_by_another_daemon",
            "pbx_claim_lost",
        ]


async def test_a_start_that_fails_after_the_claim_leaves_no_mark_behind(tmp_path: Path) -> None:
    """A socket port taken on FreeSWITCH (exit 4, like FastAGI's on Asterisk): the mark is
    cleared again, so that a standby elsewhere need not wait for it to go stale."""
    async with running_center(tmp_path, transport="esl-outbound") as center:
        await center.daemon.stop()
        busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        try:
            settings = yaml.safe_load(center.config_path.read_text())
            settings["pbx"]["esl"]["outbound_listen_port"] = busy.sockets[0].getsockname()[1]
            path = tmp_path / "busy.yaml"
            path.write_text(yaml.safe_dump(settings, sort_keys=False))
            environ = center.daemon.environ
            blocked = Daemon(load_config(path, environ=environ), config_path=path, environ=environ)
            with pytest.raises(ListenError):
                await blocked.start()
        finally:
            busy.close()
        assert owner_mark(center) is None
        await center.start_again()


async def test_a_caller_left_in_the_music_by_a_stop_during_an_outage_is_taken_back(
    tmp_path: Path,
) -> None:
    """FreeSWITCH park: the stop could not park the waiting caller afresh (the event
    socket was down), and their failover was cancelled when the daemon took them. The next
    daemon sends them through their extension again: they are taken and start over."""
    config = {"pbx": {"esl": {"reconnect_min": 3.0, "reconnect_max": 3.0}}}
    async with running_center(tmp_path, transport="esl-inbound", config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        waiting = await center.pbx.call("800", caller_num="5550056")
        await waiting.wait_for_prompt("welcome-menu", timeout=5)
        await waiting.press("1")
        await waiting.wait_moh(timeout=5)
        await center.drop_pbx_connections()
        await until(lambda: not center.daemon.link.connected)
        await center.daemon.stop()
        daemon = await center.start_again()
        await until(lambda: waiting.uniqueid in daemon.switchboard.active, timeout=5)
        await until(lambda: waiting.heard.count("welcome-menu") == 2, timeout=5)
        await waiting.hangup()
        await center.idle()
    assert waiting.heard.count("welcome-menu") == 2, "taken by the new daemon, from the top"


async def test_a_caller_hearing_the_failover_when_a_daemon_starts_is_left_to_it(
    tmp_path: Path,
) -> None:
    """Only callers left alone in a prompt or music are taken back: one the dialplan's
    failover has (no daemon took them in time) stays there."""
    async with running_center(
        tmp_path, transport="esl-inbound", failover_after=0.3, prompt_seconds=2.0
    ) as center:
        await center.daemon.stop()
        late = await center.pbx.call("800", caller_num="5550057")
        await late.wait_for_prompt(FAILOVER, timeout=5)
        began = time.monotonic()
        await center.start_again()
        await late.wait_ended(timeout=5)
        heard_for = time.monotonic() - began
    assert late.heard == [FAILOVER], "not the daemon's welcome"
    assert heard_for >= 1.5, "the failover's 2 s message to its end, not broken off"


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_daemon_stopped_while_its_pbx_link_is_down_is_started_again_at_once(
    tmp_path: Path, transport: Transport
) -> None:
    """``callcenter soak --restarts --outages`` found it: the stop could not clear the mark,
    and the next daemon of the same process was refused (``PBXClaimed``, exit 4); and on
    FreeSWITCH park each waiting caller's hand-back logged an error."""
    slow = {"reconnect_min": 3.0, "reconnect_max": 3.0}
    config = {"pbx": {"esl" if transport == "esl-inbound" else "ami": slow}}
    async with running_center(tmp_path, transport=transport, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        waiting = await center.pbx.call("800", caller_num="5550055")
        await waiting.wait_for_prompt("welcome-menu", timeout=5)
        await waiting.press("1")
        await waiting.wait_moh(timeout=5)
        before = owner_mark(center)
        await center.drop_pbx_connections()
        await until(lambda: not center.daemon.link.connected)
        with structlog.testing.capture_logs() as logs:
            await center.daemon.stop()
        assert owner_mark(center) == before, "the stop could not reach the PBX"
        daemon = await center.start_again()
        mark = owner_mark(center)
        assert mark is not None and mark.owner == daemon.pbx.claim_keeper.owner
        alice = center.pbx.phones["PJSIP/1001"]
        alice.answer_after = 0.05
        # Not hung up on: on FreeSWITCH park the new daemon takes them back (nobody could
        # park them afresh at the stop), on FastAGI they went on in the dialplan.
        assert waiting.state != "ended"
        await waiting.hangup()
        await a_caller_reaches_alice(center, "5550054")
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
