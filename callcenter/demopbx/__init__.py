"""The demo PBX: a simulated Asterisk speaking real AMI and FastAGI/AsyncAGI over TCP.

It is the PBX of ``callcenter demo`` and of the test suite. Start one, register phones, call::

    from callcenter.demopbx import AgentPhone, DemoAsterisk

    async with DemoAsterisk(agi_url="agi://127.0.0.1:4573") as pbx:
        pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.1))
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")

See :mod:`callcenter.demopbx.asterisk` for the PBX, :mod:`callcenter.demopbx.phones` for the
scripted phones and :mod:`callcenter.demopbx.channels` for the dialplan as data.
"""

from callcenter.demopbx.asterisk import AGIMode, DemoAsterisk
from callcenter.demopbx.channels import (
    AGI,
    CALLERS_CONTEXT,
    DEFAULT_ROUTES,
    Answer,
    Channel,
    ChannelState,
    DemoDialplan,
    Dial,
    DialplanApp,
    Hangup,
    MusicOnHold,
    NoOp,
    Playback,
    Set,
    Wait,
)
from callcenter.demopbx.manager import DemoEvent
from callcenter.demopbx.phones import AgentPhone, Caller, CallerState

__all__ = [
    "AGI",
    "CALLERS_CONTEXT",
    "DEFAULT_ROUTES",
    "AGIMode",
    "AgentPhone",
    "Answer",
    "Caller",
    "CallerState",
    "Channel",
    "ChannelState",
    "DemoAsterisk",
    "DemoDialplan",
    "DemoEvent",
    "Dial",
    "DialplanApp",
    "Hangup",
    "MusicOnHold",
    "NoOp",
    "Playback",
    "Set",
    "Wait",
]
