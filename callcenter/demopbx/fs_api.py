"""The ``api`` / ``bgapi`` commands of the demo FreeSWITCH (mod_commands, the part callcenter
uses). Each returns the api/response body exactly as FreeSWITCH 1.10 words it: ``+OK\\n``,
``-ERR No such channel!\\n``, ``uuid_getvar`` without a final newline, ``show channels`` CSV
with its ``N total.`` line, ``{"row_count": 0}\\n`` ... (``shared/traces/freeswitch``).

Supported: ``status``, ``version``, ``uptime``, ``show channels|calls [as json|count]``,
``originate``, ``uuid_kill``, ``uuid_bridge``, ``uuid_transfer``, ``uuid_getvar``,
``uuid_setvar``, ``uuid_exists``, ``uuid_break``, ``uuid_answer``, ``uuid_recv_dtmf``,
``uuid_dump``, ``uuid_hold``, ``uuid_record``, ``hupall``, ``global_getvar``,
``global_setvar``, ``sched_del``, ``log``, ``echo``.
Anything else answers ``-ERR <cmd> Command not found!``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import structlog

from callcenter.demopbx.fs_apps import (
    FSConfRoom,
    execute,
    link,
    mask_session_recording,
    originate_legs,
    start_session_recording,
    stop_session_recording,
)
from callcenter.demopbx.fs_channels import (
    FREESWITCH_VERSION_LINE,
    BridgeTo,
    ChannelState,
    FSChannel,
    Transfer,
    cause_name,
    channel_row,
    prompt_name,
    uptime_words,
)
from callcenter.demopbx.fs_esl import json_rows, plain_dump
from callcenter.demopbx.fs_say import parse_say, say_prompts

if TYPE_CHECKING:
    from callcenter.demopbx.freeswitch import DemoFreeSwitch

log = structlog.get_logger(__name__)

ApiHandler = Callable[["DemoFreeSwitch", str], Awaitable[str]]

NO_SUCH_CHANNEL = "-ERR No such channel!\n"


async def api_status(pbx: DemoFreeSwitch, args: str) -> str:
    """``status``."""
    count = len(pbx.channels)
    return (
        f"UP {uptime_words(pbx.uptime)}\n"
        "FreeSWITCH (Version 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit) is ready\n"
        f"{pbx.sessions_since_startup} session(s) since startup\n"
        f"{count} session(s) - peak {pbx.peak_sessions}, last 5min {pbx.peak_sessions} \n"
        "0 session(s) per Sec out of max 200, peak 0, last 5min 0 \n"
        "1000 session(s) max\n"
        "min idle cpu 0.00/98.47\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


async def api_version(pbx: DemoFreeSwitch, args: str) -> str:
    """``version``."""
    return FREESWITCH_VERSION_LINE + "\n"


async def api_uptime(pbx: DemoFreeSwitch, args: str) -> str:
    """``uptime`` (seconds)."""
    return f"{int(pbx.uptime)}\n"


def _csv(rows: list[dict[str, str]], columns: list[str]) -> str:
    lines = [",".join(columns)]
    lines += [",".join(row.get(column, "") for column in columns) for row in rows]
    return "\n".join(lines) + f"\n\n{len(rows)} total.\n"


def _live(pbx: DemoFreeSwitch) -> list[FSChannel]:
    return [c for c in pbx.channels.values() if not c.destroyed]


_CALL_COLUMNS: Final = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num",
    "ip_addr", "dest", "presence_id", "presence_data", "accountcode", "callstate",
    "callee_name", "callee_num", "callee_direction", "call_uuid", "hostname",
    "sent_callee_name", "sent_callee_num",
)  # fmt: skip
"""The columns of a leg in a ``show calls`` row (FreeSWITCH's ``basic_calls`` view), as
trace d_transfers prints them; the bridged leg's follow with ``b_`` (but ``call_uuid`` and
``hostname``)."""


def _call_rows(pbx: DemoFreeSwitch) -> list[dict[str, str]]:
    """``show calls``: every live channel but the b-leg of a bridge, with that bridge's
    b-leg in the ``b_`` columns (empty for a channel in no bridge), as the core's ``calls``
    table (a row per CHANNEL_BRIDGE, gone at its UNBRIDGE) joins them."""
    host = pbx.hub.hostname
    rows = []
    for chan in _live(pbx):
        bridge = chan.bridge
        if bridge is not None and not bridge.ended and bridge.b is chan:
            continue
        mine = channel_row(chan, host)
        row = {column: mine[column] for column in _CALL_COLUMNS}
        peer = bridge.b if bridge is not None and not bridge.ended else None
        theirs = channel_row(peer, host) if peer is not None and not peer.destroyed else {}
        for column in _CALL_COLUMNS:
            if column not in ("hostname", "call_uuid"):
                row["b_" + column] = theirs.get(column, "")
        row["call_created_epoch"] = str(chan.t_bridged // 1_000_000) if theirs else ""
        rows.append(row)
    return rows


async def api_show(pbx: DemoFreeSwitch, args: str) -> str:
    """``show channels|calls [as json|count]``: every live channel; calls: see
    :func:`_call_rows`."""
    words = args.lower().split()
    what = words[0] if words else ""
    if what not in ("channels", "calls"):
        return "-USAGE: show channels|calls [as json|count]\n"
    if what == "calls":
        rows = _call_rows(pbx)
    else:
        rows = [channel_row(c, pbx.hub.hostname) for c in _live(pbx)]
    if "count" in words[1:]:
        return f"\n{len(rows)} total.\n"
    if words[1:3] == ["as", "json"]:
        return json_rows(rows)
    if not rows:
        return "\n0 total.\n"
    return _csv(rows, list(rows[0]))


def _channel(pbx: DemoFreeSwitch, uuid: str) -> FSChannel | None:
    chan = pbx.channels.get(uuid)
    return chan if chan is not None and not chan.destroyed else None


async def api_uuid_kill(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_kill <uuid> [cause]``."""
    words = args.split()
    chan = _channel(pbx, words[0]) if words else None
    if chan is None:
        return NO_SUCH_CHANNEL
    cause = (cause_name(words[1]) if len(words) > 1 else None) or "NORMAL_CLEARING"
    chan.hangup(cause)
    return "+OK\n"


async def api_hupall(pbx: DemoFreeSwitch, args: str) -> str:
    """``hupall [cause]``."""
    cause = cause_name(args.split(maxsplit=1)[0]) if args.split() else None
    cause = cause or "MANAGER_REQUEST"
    for chan in _live(pbx):
        chan.hangup(cause)
    return f"+OK hangup all channels with cause {cause}\n"


async def api_uuid_exists(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_exists <uuid>``: ``true`` / ``false`` (no newline)."""
    return "true" if _channel(pbx, args.strip()) is not None else "false"


async def api_uuid_getvar(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_getvar <uuid> <var>``: the value, no newline; ``_undef_`` when unset."""
    words = args.split()
    if len(words) < 2:
        return "-USAGE: <uuid> <var>\n"
    chan = _channel(pbx, words[0])
    if chan is None:
        return NO_SUCH_CHANNEL
    value = chan.variables.get(words[1])
    return value if value is not None else "_undef_"


async def api_uuid_setvar(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_setvar <uuid> <var> [value]`` (no value: unset)."""
    words = args.split(None, 2)
    if len(words) < 2:
        return "-USAGE: <uuid> <var> [value]\n"
    chan = _channel(pbx, words[0])
    if chan is None:
        return NO_SUCH_CHANNEL
    chan.set_var(words[1], words[2] if len(words) > 2 else None)
    return "+OK\n"


async def api_uuid_break(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_break <uuid> [all]``: stop the playback that runs (``all``: drop queued apps)."""
    words = args.split()
    chan = _channel(pbx, words[0]) if words else None
    if chan is None:
        return NO_SUCH_CHANNEL
    chan.request_break(flush=len(words) > 1 and words[1].lower() == "all")
    return "+OK\n"


async def api_uuid_answer(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_answer <uuid>``."""
    chan = _channel(pbx, args.strip())
    if chan is None:
        return NO_SUCH_CHANNEL
    chan.mark_answered()
    return "+OK\n"


async def api_uuid_recv_dtmf(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_recv_dtmf <uuid> <digits>``: as if the phone pressed them."""
    words = args.split()
    chan = _channel(pbx, words[0]) if words else None
    if chan is None or len(words) < 2:
        return NO_SUCH_CHANNEL
    for digit in words[1]:
        chan.deliver_digit(digit)
    return f"+OK {chan.uuid} received DTMF {words[1]}.\n"


async def api_uuid_dump(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_dump <uuid> [json]``: the channel as a CHANNEL_DATA event."""
    words = args.split()
    chan = _channel(pbx, words[0]) if words else None
    if chan is None:
        return NO_SUCH_CHANNEL
    site = ("mod_commands.c", "uuid_dump_function", "6468")
    event = chan.build("CHANNEL_DATA", site=site)
    if len(words) > 1 and words[1].lower() == "json":
        return json.dumps(dict(event.headers), ensure_ascii=False)
    return plain_dump(event.headers)


async def api_uuid_bridge(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_bridge <uuid> <other uuid>``: both leave what they run and are bridged; when
    one leg goes, the other hangs up unless ``park_after_bridge`` is true (trace c)."""
    words = args.split()
    if len(words) < 2:
        return "-USAGE: <uuid> <other_uuid>\n"
    a, b = _channel(pbx, words[0]), _channel(pbx, words[1])
    if a is None or b is None or a is b or a.hungup or b.hungup:
        return "-ERR Invalid uuid\n"
    bridge = link(a, b, "uuid_bridge")
    a.request_redirect(BridgeTo(b, bridge))
    b.request_redirect(BridgeTo(a, bridge))
    return f"+OK {b.uuid}\n"


async def api_uuid_transfer(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_transfer <uuid> [-bleg|-both] <destination> [dialplan] [context]``."""
    words = args.split()
    chan = _channel(pbx, words[0]) if words else None
    if chan is None:
        return NO_SUCH_CHANNEL
    words = words[1:]
    which = "a"
    if words and words[0] in ("-bleg", "-both"):
        which = words.pop(0)[1:]
    if not words:
        return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
    transfer = Transfer(
        words[0], words[1] if len(words) > 1 else "XML", words[2] if len(words) > 2 else "default"
    )
    targets = []
    if which in ("a", "both"):
        targets.append(chan)
    if which in ("bleg", "both") and chan.bridge is not None:
        targets.append(chan.bridge.b if chan.bridge.a is chan else chan.bridge.a)
    for target in targets:
        target.request_redirect(transfer)
    return "+OK\n"


_HOLD_SITE = ("switch_ivr.c", "switch_ivr_hold", "1498")


async def api_uuid_hold(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_hold [off|toggle] <uuid>``: hold the channel; its bridged partner hears the
    held channel's ``hold_music`` until ``uuid_hold off`` (CHANNEL_HOLD / CHANNEL_UNHOLD)."""
    words = args.split()
    action = words.pop(0) if words and words[0] in ("off", "toggle") else "on"
    chan = _channel(pbx, words[0]) if words else None
    if chan is None:
        return NO_SUCH_CHANNEL
    hold = not chan.held if action == "toggle" else action == "on"
    if hold == chan.held:
        return "+OK Success\n"
    chan.held = hold
    partner = chan.other if chan.bridge is not None else None
    if partner is not None:
        partner.hearing_hold_music = hold
        if hold:
            partner.moh_starts += 1
        partner.notify()
    chan.fire("CHANNEL_HOLD" if hold else "CHANNEL_UNHOLD", site=_HOLD_SITE)
    chan.notify()
    return "+OK Success\n"


async def api_uuid_record(pbx: DemoFreeSwitch, args: str) -> str:
    """``uuid_record <uuid> start|stop|mask|unmask <path>`` (``stop all`` stops every
    recording; ``mask`` records silence until ``unmask``)."""
    words = args.split()
    if len(words) < 3 or words[1] not in ("start", "stop", "mask", "unmask"):
        return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
    chan = _channel(pbx, words[0])
    if chan is None or chan.hungup:
        return "-ERR Cannot locate session!\n"
    if words[1] == "start":
        start_session_recording(chan, words[2])
        return "+OK Success\n"
    if words[1] in ("mask", "unmask"):
        if not mask_session_recording(chan, words[2], words[1] == "mask"):
            return f"-ERR Cannot {words[1]} recording session!\n"
        return "+OK Success\n"
    if not stop_session_recording(chan, None if words[2] == "all" else words[2]):
        return "-ERR Cannot stop record session!\n"
    return "+OK Success\n"


def _split_originate(args: str) -> list[str]:
    """Words of an originate command: spaces inside ``{}``, ``[]``, ``()`` or quotes
    do not split."""
    words: list[str] = []
    current: list[str] = []
    depth = 0
    quote = ""
    for char in args:
        if quote:
            if char == quote:
                quote = ""
            else:
                current.append(char)
            continue
        if char in "'\"" and depth == 0:
            quote = char
            continue
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth = max(depth - 1, 0)
        if char == " " and depth == 0:
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        words.append("".join(current))
    return words


async def api_originate(pbx: DemoFreeSwitch, args: str) -> str:
    """``originate <dial string> <exten>|&<app>(<args>) [dialplan] [context] [cid_name]
    [cid_num] [timeout]``: ``+OK <uuid>`` once answered, else ``-ERR <CAUSE>``.

    The timeout comes from ``originate_timeout`` / ``leg_timeout`` / ``call_timeout`` in the
    dial string, else the ``timeout`` word, else 60 s; then the leg hangs up ``NO_ANSWER``.
    """
    words = _split_originate(args)
    if len(words) < 2:
        return (
            "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
            "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n"
        )
    dialstring, where = words[0], words[1]
    context = words[3] if len(words) > 3 else "default"
    cid_name = words[4] if len(words) > 4 else "FreeSWITCH"
    cid_num = words[5] if len(words) > 5 else "0000000000"
    try:
        timeout = float(words[6]) if len(words) > 6 else 60.0
    except ValueError:
        timeout = 60.0
    leg, cause = await originate_legs(
        pbx, None, dialstring, timeout=timeout, caller_id=(cid_num, cid_name)
    )
    if leg is None:
        return f"-ERR {cause}\n"
    if where.startswith("&"):
        app, _, rest = where[1:].partition("(")
        app_arg = rest[:-1] if rest.endswith(")") else rest
        if not rest and " " in app:
            app, _, app_arg = app.partition(" ")
        app_name = app.strip()

        async def run_app() -> None:
            leg.set_state(ChannelState.CS_EXECUTE)
            await execute(pbx, leg, app_name, app_arg)

        leg.pending_program = run_app
    else:
        destination = where

        async def run_exten() -> None:
            leg.hit_dialplan = True
            leg.set_transfer(destination, context)
            await pbx.route(leg, destination, context)

        leg.pending_program = run_exten
    leg.notify()
    return f"+OK {leg.uuid}\n"


async def api_conference(pbx: DemoFreeSwitch, args: str) -> str:
    """``conference <room> kick <member id>|all``, ``conference <room> play <file>
    <member id>`` (to that member only: a ``tone_stream`` of the ring is heard as
    ``ringback``) and ``conference <room> stop all <member id>`` (mod_conference's API)."""
    words = args.split()
    if len(words) < 3 or words[1] not in ("kick", "play", "stop"):
        return "-ERR usage: conference <room> kick <member id>|all\n"
    room = pbx.conferences.get(words[0])
    if room is None:
        return f"-ERR Conference {words[0]} not found\n"
    if words[1] in ("play", "stop"):
        return _member_sound(room, words)
    members = [c for c in room.members if words[2] in ("all", str(room.member_ids.get(c.uuid)))]
    if not members:
        return f"Non-Existent ID {words[2]}\n"
    for member in members:
        room.kicked.add(member.uuid)
        member.notify()
    return "+OK kicked " + " ".join(str(room.member_ids.get(c.uuid)) for c in members) + "\n"


def _member_sound(room: FSConfRoom, words: list[str]) -> str:
    member_id = words[3] if len(words) > 3 else ""
    found = [c for c in room.members if str(room.member_ids.get(c.uuid)) == member_id]
    if not found:
        # The demo plays to one member only (the room-wide forms are not modelled).
        return f"Non-Existent ID {member_id or '(none)'}\n"
    (member,) = found
    if words[1] == "stop":
        stopped = 1 if room.playing.pop(member.uuid, None) is not None else 0
        return f"Stopped {stopped} files\n"
    room.playing[member.uuid] = words[2]
    ringing = words[2].startswith("tone_stream://") and "440,480" in words[2]
    member.heard.append("ringback" if ringing else prompt_name(words[2]))
    member.notify()
    return f"+OK (play) Playing file {words[2]} to member {member_id}\n"


async def api_global_getvar(pbx: DemoFreeSwitch, args: str) -> str:
    """``global_getvar <name>``."""
    return pbx.global_vars.get(args.strip(), "")


async def api_global_setvar(pbx: DemoFreeSwitch, args: str) -> str:
    """``global_setvar <name>=<value>``."""
    name, _, value = args.partition("=")
    pbx.global_vars[name.strip()] = value.strip()
    return "+OK\n"


async def api_sched_del(pbx: DemoFreeSwitch, args: str) -> str:
    """``sched_del <task id|group>``: drop scheduled tasks (``+OK Deleted: <count>``)."""
    key = args.strip()
    if not key:
        return "-ERR Invalid syntax\n"
    return f"+OK Deleted: {pbx.scheduler.delete(key)}\n"


async def api_sofia_contact(pbx: DemoFreeSwitch, args: str) -> str:
    """``sofia_contact [profile/]user[@domain]``: the registered contact's dial string, or
    ``error/user_not_registered``."""
    target = args.strip().rpartition("/")[2]
    user = target.partition("@")[0]
    if not user:
        return "-ERR Usage: sofia_contact [profile/]<user>@<domain>\n"
    return pbx.registered_contact(user) or "error/user_not_registered"


async def api_module_exists(pbx: DemoFreeSwitch, args: str) -> str:
    """``module_exists <mod>``: ``true`` or ``false`` (mod_commands)."""
    return "true" if args.strip() in pbx.modules else "false"


async def api_log(pbx: DemoFreeSwitch, args: str) -> str:
    """``log <level> <text>``."""
    level, _, text = args.partition(" ")
    log.info("demofs_api_log", level=level, text=text)
    return "+OK\n"


_SAY_STRING_USAGE = (
    "-ERR Usage: <module_name>[.<ext>] <lang>[.<ext>] <say_type> <say_method> "
    "[<say_gender>] <text>\n"
)


async def api_say_string(pbx: DemoFreeSwitch, args: str) -> str:
    """``say_string <module>[.<ext>] <lang>[.<ext>] <type> <method> [<gender>] <text>``: the
    files ``say`` would play, as ``file_string://a.wav!b.wav`` (a text starting with ``~``:
    without the ``file_string://``), as mod_commands prints them."""
    words = args.split()
    if len(words) not in (5, 6):
        return _SAY_STRING_USAGE
    module, _, ext = words[0].partition(".")
    language, _, lang_ext = words[1].partition(".")
    text = words[-1]
    strip = text.startswith("~")
    request = parse_say(" ".join([f"{module}:{language}", *words[2:-1], text.lstrip("~")]))
    prompts = say_prompts(request) if request is not None else None
    if not prompts:
        return _SAY_STRING_USAGE
    suffix = "." + (ext or lang_ext or "wav")
    joined = "!".join(prompt + suffix for prompt in prompts)
    return joined if strip else "file_string://" + joined


async def api_echo(pbx: DemoFreeSwitch, args: str) -> str:
    """``echo <text>``."""
    return args


API_COMMANDS: dict[str, ApiHandler] = {
    "conference": api_conference,
    "echo": api_echo,
    "global_getvar": api_global_getvar,
    "global_setvar": api_global_setvar,
    "hupall": api_hupall,
    "log": api_log,
    "module_exists": api_module_exists,
    "originate": api_originate,
    "say_string": api_say_string,
    "sched_del": api_sched_del,
    "show": api_show,
    "sofia_contact": api_sofia_contact,
    "status": api_status,
    "uptime": api_uptime,
    "uuid_answer": api_uuid_answer,
    "uuid_break": api_uuid_break,
    "uuid_bridge": api_uuid_bridge,
    "uuid_dump": api_uuid_dump,
    "uuid_exists": api_uuid_exists,
    "uuid_getvar": api_uuid_getvar,
    "uuid_hold": api_uuid_hold,
    "uuid_kill": api_uuid_kill,
    "uuid_record": api_uuid_record,
    "uuid_recv_dtmf": api_uuid_recv_dtmf,
    "uuid_setvar": api_uuid_setvar,
    "uuid_transfer": api_uuid_transfer,
    "version": api_version,
}


async def run_api(pbx: DemoFreeSwitch, command: str, args: str) -> str:
    """Run one api command; fires the API event first, as ``switch_api_execute`` does."""
    specific = [("API-Command", command)]
    if args:
        specific.append(("API-Command-Argument", args))
    pbx.hub.fire("API", specific)
    handler = API_COMMANDS.get(command.lower())
    if handler is None:
        return f"-ERR {command} Command not found!\n"
    started = time.monotonic()
    result = await handler(pbx, args)
    log.debug("demofs_api", command=command, seconds=round(time.monotonic() - started, 3))
    return result
