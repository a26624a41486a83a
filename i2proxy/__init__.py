"""i2proxy: an asyncio SOCKS and HTTP proxy for the I2P anonymous network."""

__version__ = "0.1.0"
