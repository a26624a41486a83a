"""I2P streaming protocol: a sans-IO connection core and an asyncio adapter."""
