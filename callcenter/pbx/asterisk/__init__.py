"""The Asterisk driver: AMI for events and PBX-wide actions, FastAGI or AsyncAGI for calls.

Build an :class:`AsteriskDriver` from :class:`AsteriskSettings`; it implements
:class:`callcenter.pbx.interface.PBX` and hands every call to the engine as an
:class:`AsteriskCall` (a :class:`callcenter.pbx.interface.Call`).
"""

from callcenter.pbx.asterisk.agi import (
    AGISession,
    AsyncAGIRouter,
    AsyncAGISession,
    FastAGIServer,
    FastAGISession,
)
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.asterisk.driver import AsteriskCall, AsteriskDriver, AsteriskSettings

__all__ = [
    "AGISession",
    "AMIConnection",
    "AsteriskCall",
    "AsteriskDriver",
    "AsteriskSettings",
    "AsyncAGIRouter",
    "AsyncAGISession",
    "FastAGIServer",
    "FastAGISession",
]
