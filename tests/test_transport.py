"""Transport of both clients against hostile servers on 127.0.0.1 (issue 13, items 4, 6, 8, 11, 12).

Bodies are read streamed and capped (on the wire and after decompression) within the timeout,
every parse failure is the client's own error, redirects are never followed (the password and
the token go only to the server the user chose), the token never travels in a URL, vendor text
is shortened and escaped, and what is kept (diagnostics, the stored reading) is small and valid
JSON for any encoder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
import copy
import datetime as dt
import json
from pathlib import Path
import ssl
import time
from typing import Any
import zlib

import aiohttp
from aiohttp import web
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
import orjson
import pytest

from custom_components.meter_hub.api import iammeter
from custom_components.meter_hub.api.homewizard import client as homewizard_api
from custom_components.meter_hub.api.homewizard.client import HomeWizardClient
from custom_components.meter_hub.api.homewizard.errors import (
    CannotConnect as HwCannotConnect,
    InvalidPayload,
    NotHomeWizard,
    WrongDevice,
)
from custom_components.meter_hub.api.iammeter import (
    CannotConnect,
    IamMeterClient,
    InvalidResponse,
    Redirected,
)
from custom_components.meter_hub.api.transport import diagnostic_copy, loggable
from custom_components.meter_hub.const import CLOUD_SCAN_INTERVAL, DOMAIN
from simulator import hostile
from simulator.homewizard import PROFILES, FakeHomeWizard
from simulator.iammeter import DEFAULT_START, VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud

from .conftest import async_poll, async_setup_cloud
from .test_cloud_config_flow import assert_error, start_cloud_flow, submit, user_input
from .test_iammeter_api import TOKEN, client, clock, cloud
from .test_secrets import _self_signed

__all__ = ["client", "clock", "cloud"]  # the fixtures

USERNAME, PASSWORD = VENDOR_EXAMPLE_LOGIN
SERIAL = "5c2fafabcdef"


def _envelope(data: object, **fields: object) -> bytes:
    return json.dumps({"data": data, "successful": True, "message": None, **fields}).encode()


# --- a recording server: "another host" ---------------------------------------------------------


class Recorder:
    """A server that records every request and answers like the cloud (a login, no meters)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str | None, bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            (request.method, request.path, request.query_string, request.headers.get("token"), body)
        )
        if request.path.endswith("/login"):
            return web.Response(body=_envelope({"id": 1, "token": "stolen"}))
        return web.Response(body=_envelope([]))


@pytest.fixture
async def recorder(socket_enabled: None) -> AsyncIterator[Recorder]:
    server = Recorder()
    await server.start()
    yield server
    await server.stop()


# --- HomeWizard: size, time, parsing, identity --------------------------------------------------


def _data_only(responder: hostile.Responder) -> hostile.Responder:
    """``responder`` for /api/v1/data; /api answers as the device does."""

    async def respond(request: web.Request, released: Any) -> web.StreamResponse:
        if request.path == "/api":
            return web.json_response({**_DEVICE, "serial": SERIAL})
        return await responder(request, released)

    return respond


_DEVICE = PROFILES["HWE-P1"].device


async def _hw_reading(homewizard: FakeHomeWizard, session: aiohttp.ClientSession, **kw: Any) -> Any:
    client = HomeWizardClient(session, homewizard.host, **kw)
    return await client.measurement(SERIAL)


@pytest.mark.parametrize(
    ("inflated", "error"),
    [
        # 16 KB on the wire: inflated up to the cap, not further
        (16 * hostile.MIB, "larger than 65536 bytes once decompressed"),
        # 260 KB on the wire: refused from its length
        (256 * hostile.MIB, r"larger than 65536 bytes \(\d+ announced\)"),
    ],
)
async def test_homewizard_gzip_bomb_stops_at_the_cap(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession, inflated: int, error: str
) -> None:
    homewizard.respond = _data_only(hostile.compressed(hostile.gzip_bomb(inflated)))
    started = time.perf_counter()
    with pytest.raises(InvalidPayload, match=error):
        await _hw_reading(homewizard, session)
    assert time.perf_counter() - started < 1


async def test_homewizard_endless_stream_stops_at_the_cap(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    homewizard.respond = _data_only(hostile.endless())
    with pytest.raises(InvalidPayload, match="larger than 65536 bytes"):
        await _hw_reading(homewizard, session)


async def test_homewizard_slow_drip_ends_within_the_timeout(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    homewizard.respond = _data_only(hostile.slow_drip(0.05))
    started = time.perf_counter()
    with pytest.raises(HwCannotConnect, match=r"did not answer within 0\.5 s"):
        await _hw_reading(homewizard, session, timeout=0.5)
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize(
    ("body", "error"),
    [
        # valid JSON, but more than the cap
        (json.dumps({"active_power_w": 1, "pad": "x" * 70_000}).encode(), "larger than"),
        (hostile.deeply_nested(20_000), "did not answer JSON"),
        (b'{"wifi_ssid": "\xff\xfe"}', "did not answer JSON"),
        (b"[1, 2]", "not an object"),
    ],
    ids=["oversized", "deep-nesting", "invalid-utf-8", "list"],
)
async def test_homewizard_bad_bodies_are_typed_errors(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession, body: bytes, error: str
) -> None:
    async def plain(request: web.Request, released: Any) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    homewizard.respond = _data_only(plain)
    with pytest.raises(InvalidPayload, match=error):
        await _hw_reading(homewizard, session)


_GZIPPED = hostile.gzip_bomb(1000)


@pytest.mark.parametrize(
    ("body", "encoding", "error"),
    [
        (b"\x1b\x00", "br", "unsupported content encoding br"),
        (b"gzip, gzip", "gzip, gzip", "unsupported content encoding"),
        (b"\x1f\x8b not gzip at all", "gzip", "the gzip body is broken"),
        (_GZIPPED[:-12], "gzip", "the gzip body is cut off"),
        (_GZIPPED + b"trailing", "gzip", "data after the end of the gzip body"),
    ],
    ids=["brotli", "stacked", "broken", "cut-off", "trailing-data"],
)
async def test_homewizard_encodings_it_cannot_read_are_typed_errors(
    homewizard: FakeHomeWizard,
    session: aiohttp.ClientSession,
    body: bytes,
    encoding: str,
    error: str,
) -> None:
    homewizard.respond = _data_only(hostile.compressed(body, encoding))
    with pytest.raises(InvalidPayload, match=error):
        await _hw_reading(homewizard, session)


async def test_a_compressed_answer_within_the_cap_is_read(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    body = json.dumps(homewizard.data).encode()
    packer = zlib.compressobj(wbits=zlib.MAX_WBITS)  # "deflate": zlib-wrapped
    homewizard.respond = _data_only(
        hostile.compressed(packer.compress(body) + packer.flush(), "deflate")
    )
    _, reading = await _hw_reading(homewizard, session)
    assert reading.values["power_w"] == homewizard.data["active_power_w"]


async def test_homewizard_identity_is_checked_before_the_data_is_parsed(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    # another device holds the address; its /api/v1/data is a nesting bomb: never parsed
    homewizard.device["serial"] = "5c2faf999999"
    parsed: list[bytes] = []
    original = homewizard_api.parse_json

    async def watch(body: bytes) -> Any:
        parsed.append(body)
        return await original(body)

    async def respond(request: web.Request, released: Any) -> web.StreamResponse:
        if request.path == "/api":
            return web.json_response(homewizard.device)
        return web.Response(body=hostile.deeply_nested(20_000), content_type="application/json")

    homewizard.respond = respond
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(homewizard_api, "parse_json", watch)
        with pytest.raises(WrongDevice, match=r"another device \(5c2faf999999\)"):
            await _hw_reading(homewizard, session)
    assert all(body.startswith(b"{") for body in parsed)  # only /api was parsed


async def test_homewizard_diagnostics_payload_is_bounded_and_encodable(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    homewizard.device["serial"] = SERIAL
    homewizard.data |= {
        "huge": 10**30,
        "lone_surrogate": "\ud800",
        "long": "y" * 5000,
        "many": list(range(5000)),
        "deep": json.loads(hostile.deeply_nested(50)),
    }
    client = HomeWizardClient(session, homewizard.host)
    await client.measurement(SERIAL)
    kept = client.last_data_payload
    encoded = orjson.dumps(kept)  # would raise on 10**30 or a surrogate
    assert len(encoded) < 10_000
    assert isinstance(kept, dict)
    assert kept["active_power_w"] == homewizard.data["active_power_w"]
    assert kept["lone_surrogate"] == "\\ud800"
    assert orjson.dumps(client.last_device_payload)


async def test_homewizard_loggable_in_errors_is_short_and_escaped(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession
) -> None:
    # Not valid text for a serial: refused as not a HomeWizard device, with no trace of it.
    homewizard.device["serial"] = "evil\nERROR forged line " + "z" * 5000
    with pytest.raises(NotHomeWizard) as caught:
        await _hw_reading(homewizard, session)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 200
    homewizard.device["serial"] = SERIAL
    homewizard.device["api_version"] = "v2\n" + "w" * 5000
    with pytest.raises(NotHomeWizard) as caught_api:
        await HomeWizardClient(session, homewizard.host).device()
    assert "\n" not in str(caught_api.value)
    assert len(str(caught_api.value)) < 200


async def test_homewizard_redirect_is_not_followed(
    homewizard: FakeHomeWizard, session: aiohttp.ClientSession, recorder: Recorder
) -> None:
    homewizard.respond = _data_only(hostile.redirect(f"{recorder.url}/api/v1/data"))
    with pytest.raises(HwCannotConnect, match="HTTP status 302"):
        await _hw_reading(homewizard, session)
    assert recorder.seen == []


# --- IAMMETER: size, time, parsing --------------------------------------------------------------


async def test_cloud_gzip_bomb_stops_at_the_cap(
    cloud: FakeIamMeterCloud, client: IamMeterClient
) -> None:
    cloud.inject_fault(respond=hostile.compressed(hostile.gzip_bomb()))
    started = time.perf_counter()
    with pytest.raises(InvalidResponse, match="larger than 2097152 bytes once decompressed"):
        await client.meters_data()
    assert time.perf_counter() - started < 1


async def test_cloud_endless_stream_stops_at_the_cap(
    cloud: FakeIamMeterCloud, client: IamMeterClient
) -> None:
    cloud.inject_fault(respond=hostile.endless())
    with pytest.raises(InvalidResponse, match="larger than 2097152 bytes"):
        await client.meters_data()


async def test_cloud_slow_drip_ends_within_the_timeout(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession
) -> None:
    cloud.inject_fault(respond=hostile.slow_drip(0.05))
    client = IamMeterClient(session, cloud.url, token=TOKEN, timeout=0.5)
    started = time.perf_counter()
    with pytest.raises(CannotConnect, match=r"no answer within 0\.5 s"):
        await client.meters_data()
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (_envelope([], pad="x" * (2 * 1024 * 1024)), "larger than"),
        (hostile.deeply_nested(), "the body is not JSON"),
        (b'{"data": [], "successful": true, "message": "\xff"}', "the body is not JSON"),
        (b'["data", "successful"]', "not an object"),
        (b"1e999999", "not an object"),
    ],
    ids=["oversized", "deep-nesting", "invalid-utf-8", "list", "number"],
)
async def test_cloud_bad_bodies_are_typed_errors(
    cloud: FakeIamMeterCloud, client: IamMeterClient, body: bytes, error: str
) -> None:
    cloud.inject_fault(body=body)
    with pytest.raises(InvalidResponse, match=error):
        await client.meters_data()


async def test_cloud_a_deeply_nested_login_answer_is_a_typed_error(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession
) -> None:
    cloud.inject_fault(body=hostile.deeply_nested(), endpoint="login")
    with pytest.raises(InvalidResponse):
        await IamMeterClient(session, cloud.url).login(USERNAME, PASSWORD)


@pytest.mark.parametrize(
    "message",
    ["m" * 1_500_000, "first\nERROR forged: admin logged in\r\x1b[31m", "\ud800" * 3],
    ids=["1.5-MB", "multi-line", "surrogates"],
)
async def test_cloud_vendor_message_is_short_and_escaped(
    cloud: FakeIamMeterCloud, client: IamMeterClient, message: str
) -> None:
    body = {"data": None, "successful": False, "message": message}
    cloud.inject_fault(body=json.dumps(body).encode())
    with pytest.raises(iammeter.ApiError) as caught:
        await client.meters_data()
    text = str(caught.value)
    assert caught.value.vendor_message is not None
    assert len(caught.value.vendor_message) <= 201
    assert len(text) < 300
    assert text.isprintable()


async def test_cloud_stored_reading_holds_known_fields_only(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession
) -> None:
    client = IamMeterClient(session, cloud.url, token=cloud.issue_token(USERNAME))
    good = await client.meters_data()
    data = orjson.loads(orjson.dumps(client.last_meters_payload))
    for entry in data:
        entry |= {"huge": 10**30, "nested": {"a": [{"b": "\ud800"}] * 100}}
    data[0]["values"][0] = 10**30  # a value out of every bound
    cloud.inject_fault(
        body=json.dumps({"data": data, "successful": True, "message": None}).encode()
    )
    readings = await client.meters_data()
    kept = client.last_meters_payload
    assert kept is not None
    assert {key for entry in kept for key in entry} == {"sn", "values", "gmtTime"}
    orjson.dumps(kept)  # any encoder takes it: a save cannot fail
    assert kept[0]["values"][0] is None
    assert readings.keys() == good.keys()
    assert iammeter.parse_meters_data(kept) == readings


# --- IAMMETER: redirects and where the secrets go ------------------------------------------------


@pytest.mark.parametrize("status", [307, 308, 302, 301])
async def test_cloud_login_redirect_to_another_host_is_not_followed(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, recorder: Recorder, status: int
) -> None:
    cloud.inject_fault(
        respond=hostile.redirect(f"{recorder.url}/api/v1/user/login", status), endpoint="login"
    )
    with pytest.raises(Redirected, match=f"HTTP {status} redirect, not followed"):
        await IamMeterClient(session, cloud.url).login(USERNAME, PASSWORD)
    assert recorder.seen == []


async def test_cloud_redirect_with_the_token_to_another_host_is_not_followed(
    cloud: FakeIamMeterCloud, client: IamMeterClient, recorder: Recorder
) -> None:
    location = f"{recorder.url}/api/v1/site/metersdata?token={TOKEN}"
    cloud.inject_fault(respond=hostile.redirect(location, 302))
    with pytest.raises(Redirected) as caught:
        await client.meters_data()
    assert recorder.seen == []
    assert TOKEN not in str(caught.value)


async def test_cloud_https_to_http_redirect_is_not_followed(
    socket_enabled: None, recorder: Recorder, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    client_ssl = ssl.create_default_context(cafile=cert)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"{recorder.url}{request.path_qs}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = IamMeterClient(session, url)
            with pytest.raises(Redirected):
                await client.login(USERNAME, PASSWORD)
            client = IamMeterClient(session, url, token=TOKEN)
            with pytest.raises(Redirected):
                await client.meters_data()
    finally:
        await runner.cleanup()
    assert recorder.seen == []


async def test_the_token_never_travels_in_a_url(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    client = IamMeterClient(session, recorder.url)
    await client.login(USERNAME, PASSWORD)
    day = dt.date(2024, 2, 22)
    calls: list[Callable[[], Awaitable[object]]] = [
        client.meters_data,
        lambda: client.meter_data("SN1"),
        lambda: client.meter_data_list("SN1", day, day, 300),
        lambda: client.power_analysis("SN1", day, day),
        lambda: client.offline_analysis("SN1", day, day, 5),
        lambda: client.energy_history(1, day, day + dt.timedelta(days=1), "day"),
    ]
    for call in calls:
        # the recorder answers [] for everything: some parsers refuse it, after the request
        with contextlib.suppress(InvalidResponse):
            await call()
    requests = recorder.seen[1:]
    assert len(requests) == len(calls)
    for method, path, query, token, _ in requests:
        assert "stolen" not in f"{path}?{query}", (method, path)
        assert token == "stolen"


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb\r\tc\x1b", "a\\x0ab\\x0d\\x09c\\x1b"),
        ("\ud800x", "\\ud800x"),
        ("bidi\u202eoverride", "bidi\\u202eoverride"),
        ("é ü 中", "é ü 中"),
        ("x" * 250, "x" * 200 + "…"),
        ("\n" * 250, "\\x0a" * 50 + "…"),
    ],
)
def test_loggable(text: str, expected: str) -> None:
    assert loggable(text) == expected


def test_diagnostic_copy_is_bounded_and_encodable() -> None:
    payload: dict[str, Any] = {
        "n": 10**30,
        "f": float("nan"),
        "s": "\ud800" + "s" * 1000,
        "l": list(range(1000)),
        "d": {str(i): i for i in range(1000)},
        "deep": json.loads(hostile.deeply_nested(20)),
    }
    copy = diagnostic_copy(payload)
    assert len(orjson.dumps(copy)) < 3000
    assert isinstance(copy, dict)
    assert copy["n"] == str(10**30)
    assert copy["l"][-1] == "… 900 more"


# --- Home Assistant: the flow and the stored reading ---------------------------------------------


async def test_flow_creates_no_entry_after_a_login_redirect(
    hass: HomeAssistant, socket_enabled: None, recorder: Recorder
) -> None:
    fake = FakeIamMeterCloud(clock=dt_util.utcnow)
    await fake.start()
    try:
        fake.inject_fault(
            respond=hostile.redirect(f"{recorder.url}/api/v1/user/login", 307), endpoint="login"
        )
        result = await start_cloud_flow(hass)
        result = await submit(hass, result, user_input(fake))
        # a step that only confirms the server (plain http) is confirmed
        while result["type"] is FlowResultType.FORM and result["step_id"] != "cloud":
            result = await submit(hass, result, {})
    finally:
        await fake.stop()
    assert_error(result, "cannot_connect")
    assert recorder.seen == []
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_stored_reading_holds_known_fields_only(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    freezer.move_to(DEFAULT_START)
    fake = FakeIamMeterCloud(clock=dt_util.utcnow)
    await fake.start()
    try:
        entry = await async_setup_cloud(hass, fake)
        data = copy.deepcopy(entry.runtime_data.coordinator.client.last_meters_payload)
        for item in data:
            item |= {"huge": 10**30, "nested": {"a": [[{"b": 1}]] * 50}}
        fake.inject_fault(body=_envelope(data, extra=10**30), endpoint="metersdata")
        await async_poll(hass, freezer, CLOUD_SCAN_INTERVAL.total_seconds() + 1)
    finally:
        await fake.stop()
    stored = hass_storage[f"{DOMAIN}.cloud_{entry.data['account_id']}"]["data"]["payload"]
    assert {key for item in stored for key in item} == {"sn", "values", "gmtTime"}
    assert [record for record in caplog.records if record.levelname == "ERROR"] == []
    assert entry.runtime_data.coordinator.last_update_success
