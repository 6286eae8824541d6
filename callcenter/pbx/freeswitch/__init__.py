"""The FreeSWITCH driver: the Event Socket, inbound (``park``) and outbound (``socket``).

Build a :class:`FreeSwitchDriver` from :class:`FreeSwitchSettings`; it implements
:class:`callcenter.pbx.interface.PBX` and hands every call to the engine as a
:class:`FreeSwitchCall` (a :class:`callcenter.pbx.interface.Call`). The sockets themselves
are :class:`ESLConnection` (inbound, self-healing) and :class:`ESLOutboundServer` /
:class:`ESLOutboundSession` (outbound).
"""

from callcenter.pbx.freeswitch.connection import (
    DEFAULT_EVENTS,
    ESLClient,
    ESLConnection,
    ESLOutboundServer,
    ESLOutboundSession,
)
from callcenter.pbx.freeswitch.driver import (
    FreeSwitchCall,
    FreeSwitchDriver,
    FreeSwitchSettings,
    dial_status_for,
    fs_dial_targets,
)

__all__ = [
    "DEFAULT_EVENTS",
    "ESLClient",
    "ESLConnection",
    "ESLOutboundServer",
    "ESLOutboundSession",
    "FreeSwitchCall",
    "FreeSwitchDriver",
    "FreeSwitchSettings",
    "dial_status_for",
    "fs_dial_targets",
]
