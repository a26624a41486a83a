"""I2P streaming protocol: a sans-IO connection core and an asyncio adapter.

- :mod:`~i2proxy.streaming.packet`: the wire codec (every flag and option, signing).
- :mod:`~i2proxy.streaming.connection`: the sans-IO :class:`Connection` state machine.
- :mod:`~i2proxy.streaming.rtt`, :mod:`~i2proxy.streaming.congestion`: RTO and window policy.
- :mod:`~i2proxy.streaming.manager`: :class:`StreamManager`, the asyncio adapter over I2CP.
"""

from i2proxy.streaming.connection import Connection, PeerProfile
from i2proxy.streaming.manager import StreamManager, StreamResetError
from i2proxy.streaming.options import StreamingOptions

__all__ = ["Connection", "PeerProfile", "StreamManager", "StreamResetError", "StreamingOptions"]
