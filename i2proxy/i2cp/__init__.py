"""I2CP client: the message codec (sans-IO) and an asyncio session adapter."""
