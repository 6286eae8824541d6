"""callcenter: an asyncio call-centre engine that runs beside a real PBX."""

__version__ = "0.1.0"
