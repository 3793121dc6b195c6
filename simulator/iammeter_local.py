"""Fake IAMMETER meters on the local network (127.0.0.1), for tests, the demo and benchmarks.

Each shape answers as the vendor documents it (../shared/vendor-docs/iammeter-local/):
``/api/monitor`` on the newest firmware (model, SSID, signal), ``/api/monitorjson`` and
``/monitorjson`` on every firmware, the not-ready answer (HTTP 400, null values, serial "null")
for the first polls after a boot, and Admin Security (Basic Auth; 401, then 429 with
``Retry-After`` after repeated failures). Run ``python -m simulator.iammeter_local --shape
WEM3080T-NEM`` to serve a live meter whose power moves every second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import logging
import random
import time
from typing import Any, Final

from aiohttp import web

from .iammeter import FakeMeter
from .ssdp import Announcement, SsdpResponder

_LOGGER = logging.getLogger(__name__)

LISTEN_HOST: Final = "127.0.0.1"
MONITOR_PATHS: Final = ("/api/monitor", "/api/monitorjson", "/monitorjson")
# The UPnP-style description (``/info.xml``, public) and the device type it names, which the
# SSDP replies (``simulator.ssdp``) and Meter Hub's manifest match.
DESCRIPTION_PATH: Final = "/info.xml"
DEVICE_TYPE: Final = "urn:schemas-micasaverde-com:service:EnergyMetering:1"
# Failed logins after which Admin Security answers 429, and the wait it asks for.
FAILURES_BEFORE_429: Final = 3
RETRY_AFTER_S: Final = 30


@dataclass(frozen=True, slots=True)
class Shape:
    """What a model's answer looks like."""

    model: str
    phases: int  # rows of phase values (1: ``Data``)
    row_length: int  # 5 (early single-phase firmware) or 7
    method: str
    newest_firmware: bool  # has /api/monitor (model, SSID, signal) and EA.Reactive
    lower_case_data: bool = False  # the WEM3162's ``{"status":"succeed","data":[...]}``


SHAPES: Final = {
    "WEM3080": Shape("WEM3080", 1, 7, "1-272", newest_firmware=True),
    "WEM3080-5": Shape("WEM3080", 1, 5, "uploadsn", newest_firmware=False),
    "WEM3080T": Shape("WEM3080T", 3, 7, "2-9", newest_firmware=True),
    "WEM3080T-NEM": Shape("WEM3080T", 3, 7, "2-9", newest_firmware=True),
    "WEM3162": Shape("WEM3162", 1, 5, "", newest_firmware=False, lower_case_data=True),
}


class FakeIamMeter:
    """One fake meter; its state is free to change between requests.

    ``net_metering`` adds the fourth row; ``not_ready_polls`` answers that many requests with
    the not-ready body (as after a boot); ``password`` turns Admin Security on for the monitor
    paths too (the vendor says they stay public; a meter that asks anyway is what this
    simulates); ``status``/``body`` override every answer. ``request_count`` counts requests
    per path.
    """

    def __init__(
        self,
        shape: str = "WEM3080T",
        *,
        serial: str = "5DB50BF4",
        seed: int = 0,
        auto_advance: bool = False,
        boot_seconds: float = 0.0,
    ) -> None:
        """A meter of ``shape`` (a key of ``SHAPES``) with the serial ``serial``."""
        self.shape = SHAPES[shape]
        self.serial = serial
        self.net_metering = shape.endswith("-NEM")
        self.not_ready_polls = 0
        # not ready for this long after ``start`` (as after a power cut), whatever the polls
        self.boot_seconds = boot_seconds
        self._ready_at = 0.0
        self.password: str | None = None
        self.status: int | None = None
        self.body: bytes | None = None
        self.headers: dict[str, str] = {}  # sent with ``status``/``body``
        self.ssid: object = "home-wifi"  # what /api/monitor says (any JSON, for hostile text)
        self.model: object = self.shape.model
        self.auto_advance = auto_advance
        self.request_count: Counter[str] = Counter()
        self.failures = 0
        self.voltage = [230.1, 229.8, 231.2][: self.shape.phases]
        self.power = [1200.0, -350.0, 410.0][: self.shape.phases]
        self.imported = [1523.456, 847.25, 991.5][: self.shape.phases]
        self.exported = [12.5, 310.125, 4.0][: self.shape.phases]
        self.net_import = 2975.0
        self.net_export = 140.25
        # ``EA.Reactive`` per phase: [var, inductive kvarh, capacitive kvarh] (the vendor's example)
        self.reactive = [[-119.0, 0.0, 258.703], [-120.0, 0.0, 260.278], [-118.0, 0.007, 256.485]]
        self._rng = random.Random(seed)
        self._last = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` once started."""
        return f"{LISTEN_HOST}:{self._port}"

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0 picks a free one) and return the port."""
        app = web.Application()
        for path in MONITOR_PATHS:
            app.router.add_get(path, self._handle)
        app.router.add_get(DESCRIPTION_PATH, self._description)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LISTEN_HOST, port).start()
        self._port = self._runner.addresses[0][1]
        self._ready_at = time.monotonic() + self.boot_seconds
        return self._port

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: power walks, the counters grow by power times time."""
        for phase, power in enumerate(self.power):
            self.power[phase] = max(-5000.0, min(5000.0, power + self._rng.uniform(-50, 50)))
            kwh = abs(self.power[phase]) * seconds / 3_600_000
            if self.power[phase] >= 0:
                self.imported[phase] += kwh
            else:
                self.exported[phase] += kwh
        total = sum(self.power) * seconds / 3_600_000
        if total >= 0:
            self.net_import += total
        else:
            self.net_export -= total

    def payload(self) -> dict[str, Any]:
        """The answer of ``/monitorjson`` now (``/api/monitor`` adds ``monitor_extras``)."""
        rows = [self._row(phase) for phase in range(self.shape.phases)]
        if self.shape.lower_case_data:
            return {"status": "succeed", "data": rows[0]}
        body: dict[str, Any] = {
            "method": self.shape.method,
            "mac": "B0F8932A295C",
            "version": "i.91.065.3" if self.shape.newest_firmware else "1.75.49",
            "server": "em",
            "SN": self.serial,
        }
        if self.shape.phases == 1:
            body["Data"] = rows[0]
            return body
        if self.net_metering:
            rows.append(self._net_row())
        body["Datas"] = rows
        if self.shape.newest_firmware:
            body["EA"] = {"Reactive": [list(row) for row in self.reactive]}
        return body

    def monitor_extras(self) -> dict[str, Any]:
        """What ``/api/monitor`` adds on the newest firmware."""
        return {"ssid": self.ssid, "sig": 78, "model": self.model}

    def _row(self, phase: int) -> list[float]:
        voltage, power = self.voltage[phase], self.power[phase]
        row = [
            voltage,
            round(abs(power) / voltage, 3),
            round(power, 1),
            round(self.imported[phase], 3),
            round(self.exported[phase], 3),
        ]
        return [*row, 50.01, 0.97] if self.shape.row_length == 7 else row

    def _net_row(self) -> list[float]:
        voltage = round(sum(self.voltage) / len(self.voltage), 1)
        return [
            voltage,
            0.0,
            round(sum(self.power), 1),
            round(self.net_import, 3),
            round(self.net_export, 3),
            50.01,
            0.97,
        ]

    def _not_ready(self) -> dict[str, Any]:
        """The documented answer of a meter that has no values yet (HTTP 400)."""
        return {
            "method": "uploadsn",
            "mac": None,
            "version": None,
            "server": "em",
            "SN": "null",
            "Data": [None] * 5,
        }

    async def _handle(self, request: web.Request) -> web.Response:
        self.request_count[request.path] += 1
        if self.password is not None and not self._authorised(request):
            self.failures += 1
            if self.failures > FAILURES_BEFORE_429:
                return web.Response(status=429, headers={"Retry-After": str(RETRY_AFTER_S)})
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="IAMMETER"'})
        if request.path == "/api/monitor" and not self.shape.newest_firmware:
            raise web.HTTPNotFound
        if self.status is not None or self.body is not None:
            return web.Response(
                body=self.body or b"{}",
                status=self.status or 200,
                headers=self.headers,
                content_type="application/json",
            )
        if self.not_ready_polls > 0 or time.monotonic() < self._ready_at:
            self.not_ready_polls = max(0, self.not_ready_polls - 1)
            return web.json_response(self._not_ready(), status=400)
        if self.auto_advance:
            now = time.monotonic()
            self.advance(now - self._last)
            self._last = now
        body = self.payload()
        if request.path == "/api/monitor":
            body |= self.monitor_extras()
        return web.json_response(body)

    @property
    def udn(self) -> str:
        """The meter's UPnP device name."""
        return f"uuid:iammeter-{self.serial.lower()}"

    def announcement(self) -> Announcement:
        """What the meter's SSDP replies say."""
        return Announcement(f"http://{self.host}{DESCRIPTION_PATH}", self.udn, DEVICE_TYPE)

    def description(self) -> str:
        """The UPnP-style device description of ``/info.xml``."""
        return (
            '<?xml version="1.0"?>\n'
            '<root xmlns="urn:schemas-upnp-org:device-1-0">\n'
            "<specVersion><major>1</major><minor>0</minor></specVersion>\n"
            f"<URLBase>http://{self.host}/</URLBase>\n"
            "<device>\n"
            f"<deviceType>{DEVICE_TYPE}</deviceType>\n"
            f"<friendlyName>IAMMETER {self.shape.model} {self.serial}</friendlyName>\n"
            "<manufacturer>IAMMETER</manufacturer>\n"
            "<manufacturerURL>https://www.iammeter.com</manufacturerURL>\n"
            f"<modelName>{self.shape.model}</modelName>\n"
            f"<serialNumber>{self.serial}</serialNumber>\n"
            f"<UDN>{self.udn}</UDN>\n"
            f"<presentationURL>http://{self.host}/</presentationURL>\n"
            "</device>\n"
            "</root>\n"
        )

    async def _description(self, request: web.Request) -> web.Response:
        self.request_count[request.path] += 1
        return web.Response(text=self.description(), content_type="text/xml")

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"admin:{self.password}".encode()).decode()
        if request.headers.get("Authorization") == f"Basic {expected}":
            self.failures = 0
            return True
        return False


class CloudMeterOnLan(FakeIamMeter):
    """A meter of the fake cloud that also answers on the network: the same meter, read now.

    Its values are the cloud meter's at this moment (the cloud's are those of its last upload,
    up to a minute older), so its counters are at or past the cloud's; its power moves a little
    every few seconds on top, as a real meter's does between the cloud's slow swings.
    """

    JITTER_PERIOD_S: Final = 3

    def __init__(self, meter: FakeMeter, clock: Callable[[], datetime], *, seed: int = 0) -> None:
        """Serve ``meter`` (single- or three-phase, without net metering) at ``clock``'s time."""
        super().__init__("WEM3080" if len(meter.phases) == 1 else "WEM3080T", serial=meter.sn)
        self.meter, self.clock, self.seed = meter, clock, seed

    def payload(self) -> dict[str, Any]:
        """The answer now: the cloud meter's values at this moment, power jittered."""
        now = self.clock()
        # the documented 7-value row: V, I, P, import kWh, export kWh, Hz, PF
        rows = self.meter.values(now, 7)
        jitter = random.Random(f"{self.seed}:{int(now.timestamp()) // self.JITTER_PERIOD_S}")
        for phase, row in enumerate(rows[: self.shape.phases]):
            self.voltage[phase] = row[0] or 0.0
            self.power[phase] = (row[2] or 0.0) * (1 + jitter.uniform(-0.04, 0.04))
            self.imported[phase], self.exported[phase] = row[3] or 0.0, row[4] or 0.0
        return super().payload()


# The meters ``python -m simulator`` serves: name, shape, port offset from its port base, serial,
# Admin Security password (the monitor paths ask for it: a meter with a 401 answer).
DEMO_METERS: Final = (
    ("wem3080", "WEM3080", 20, "51A3080A", None),
    ("wem3080t", "WEM3080T", 21, "53B3080B", "demo-admin"),
    ("wem3080t_nem", "WEM3080T-NEM", 22, "53C3080C", None),
    ("wem3162", "WEM3162", 23, "", None),
)
SSDP_OFFSET: Final = 24
# The not-ready answer after a boot lasts a few seconds on a real meter.
BOOT_SECONDS: Final = 5.0


class DemoMeters:
    """Every shape on its own port, not ready for a few seconds, and an SSDP responder."""

    def __init__(self, seed: int = 0, boot_seconds: float = BOOT_SECONDS) -> None:
        """The meters of ``DEMO_METERS``, values moving with the clock."""
        self.meters: dict[str, FakeIamMeter] = {}
        for index, (name, shape, _, serial, password) in enumerate(DEMO_METERS):
            meter = FakeIamMeter(
                shape,
                serial=serial,
                seed=seed + index,
                auto_advance=True,
                boot_seconds=boot_seconds,
            )
            meter.password = password
            self.meters[name] = meter
        # the WEM3162's older answer has no serial: it has no description to announce
        self.ssdp = SsdpResponder(
            lambda: [m.announcement() for m in self.meters.values() if m.serial]
        )

    async def start(self, port_base: int) -> None:
        """Listen from ``port_base`` (0: free ports)."""
        for name, _, offset, *_ in DEMO_METERS:
            await self.meters[name].start(port_base + offset if port_base else 0)
        await self.ssdp.start(port_base + SSDP_OFFSET if port_base else 0)

    async def stop(self) -> None:
        """Stop every meter and the responder."""
        self.ssdp.stop()
        for meter in self.meters.values():
            await meter.stop()

    def status(self) -> dict[str, Any]:
        """What runs where (the ``iammeter_local`` part of the simulator's ready file)."""
        return {
            name: {
                "host": meter.host,
                "model": meter.shape.model,
                "serial": meter.serial or None,
                "net_metering": meter.net_metering,
                "admin_security": meter.password is not None,
            }
            for name, meter in self.meters.items()
        }


async def _serve(shapes: list[str], port: int) -> None:
    meters = [
        FakeIamMeter(shape, serial=f"SIM{n:05d}", auto_advance=True)
        for n, shape in enumerate(shapes)
    ]
    for offset, meter in enumerate(meters):
        await meter.start(port + offset if port else 0)
        _LOGGER.info(
            "%s (%s) at http://%s/api/monitor", meter.shape.model, meter.serial, meter.host
        )
    await asyncio.Event().wait()


def main() -> None:
    """Serve the meters named on the command line until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), default=[])
    parser.add_argument("--port", type=int, default=0, help="first port (0: any free port)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(args.shape or ["WEM3080T-NEM"], args.port))


if __name__ == "__main__":
    main()
