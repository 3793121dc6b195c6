"""Vendor clients: pure asyncio, no Home Assistant imports."""
