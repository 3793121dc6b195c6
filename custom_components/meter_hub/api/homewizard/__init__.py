"""The local API of HomeWizard Energy devices, v1 (HTTP) and v2 (HTTPS, token, WebSocket push).

The shape python-homewizard-energy uses, one module per job:

- ``models``: what a device is and what each product can do per API version;
- ``errors``: what the clients raise;
- ``hosts``: the address a user types or a device announces, normalised;
- ``parser`` and ``client``: API v1;
- ``tls``, ``v2_parser`` and ``v2_client``: API v2 (the CA shipped here, the device's name);
- ``push``: the API v2 WebSocket.

Pure asyncio and aiohttp, no Home Assistant imports.
"""
