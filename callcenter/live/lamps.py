"""Message lamps: the phones of a queue's agents light up while its voicemail messages wait.

``queues.<q>.message_lamp`` names a mailbox as the PBX knows it (Asterisk ``box@context``,
FreeSWITCH ``user@domain``); the agents' phones subscribe to it (a PBX admin's setting: a
PJSIP endpoint's ``mailboxes=``, a FreeSWITCH user's ``MWI-Account``). :class:`MessageLamps`
keeps the PBX told each lamp's counts (:meth:`PBX.set_message_lamp
<callcenter.pbx.interface.PBX.set_message_lamp>`): *new* the messages waiting for an agent
(the lamp is lit while there is one), *old* those an agent has taken and not dealt with yet;
queues sharing a lamp add up. It tells the PBX after every change of the inbox, after every
(re)connection of the PBX link (the PBX may have restarted, or the counts changed while the
link was down) and after a reload (a lamp no longer in the config is put out once). A PBX
that refuses (Asterisk without res_mwi_external_ami) is logged with what to load, and asked
again at the next change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import structlog

from callcenter.errors import ActionFailed, PBXConnectionError, PBXError
from callcenter.events import (
    ConfigReloaded,
    EngineEvent,
    VoicemailDone,
    VoicemailLeft,
    VoicemailTaken,
)
from callcenter.pbx.interface import PBX, PBXConnected, PBXEvent

if TYPE_CHECKING:
    from callcenter.config.models import CallCenterConfig
    from callcenter.records.voicemails import VoicemailInbox

log = structlog.get_logger(__name__)

OUT: Final = (0, 0)


class MessageLamps:
    """The lamps of the config's queues, kept in step with the inbox (see the module doc)."""

    def __init__(
        self, pbx: PBX, inbox: VoicemailInbox, config: Callable[[], CallCenterConfig]
    ) -> None:
        self._pbx = pbx
        self._inbox = inbox
        self._config = config
        self._told: dict[str, tuple[int, int]] = {}
        """Mailbox -> the (new, old) counts the PBX has."""
        self._wake = asyncio.Event()
        self._wake.set()  # the first look: whatever the records hold at the start

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The engine events that change a lamp (a reload: lamps added, moved, removed)."""
        return (VoicemailLeft, VoicemailTaken, VoicemailDone, ConfigReloaded)

    def on_event(self, event: EngineEvent) -> None:
        self._wake.set()

    def on_pbx_event(self, event: PBXEvent) -> None:
        if isinstance(event, PBXConnected):
            self._told.clear()  # whatever the PBX had may be gone: tell it all again
            self._wake.set()

    def lamps(self) -> dict[str, tuple[int, int]]:
        """Mailbox -> (new, old) of every lamp of the config."""
        wanted: dict[str, tuple[int, int]] = {}
        for name, queue in self._config().queues.items():
            if queue.message_lamp:
                new, old = self._inbox.counts(name)
                was_new, was_old = wanted.get(queue.message_lamp, OUT)
                wanted[queue.message_lamp] = (was_new + new, was_old + old)
        return wanted

    async def run(self) -> None:
        """Tell the PBX each change until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.tell()
            except Exception:
                log.exception("message_lamps_failed")

    async def tell(self) -> None:
        """Give the PBX every lamp whose counts it does not have yet."""
        wanted = self.lamps()
        for gone in self._told.keys() - wanted.keys():
            wanted[gone] = OUT
        for mailbox, counts in wanted.items():
            if self._told.get(mailbox) == counts:
                continue
            try:
                await self._pbx.set_message_lamp(mailbox, *counts)
            except PBXConnectionError:
                return  # told again once the link is back (PBXConnected)
            except ActionFailed as exc:
                log.error(
                    "message_lamp_refused",
                    mailbox=mailbox,
                    error=str(exc),
                    hint="Asterisk: load res_mwi_external_ami (and res_mwi_external), which "
                    "cannot run beside app_voicemail",
                )
                continue
            except PBXError as exc:
                log.warning("message_lamp_not_told", mailbox=mailbox, error=str(exc))
                continue
            log.info("message_lamp", mailbox=mailbox, new=counts[0], old=counts[1])
            if counts == OUT and mailbox not in self.lamps():
                self._told.pop(mailbox, None)
            else:
                self._told[mailbox] = counts


__all__ = ["MessageLamps"]
