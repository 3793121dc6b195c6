"""The simulator's HomeWizard API v2 devices, live: values that move with the clock, pushed.

``python -m simulator`` serves three of them (``V2_DEVICES``): a P1 meter with a Plug-In Battery
behind it (its ``/api/batteries`` reports the battery's power), a three-phase kWh meter, and the
Plug-In Battery itself. Their certificates come from a CA the simulator makes at start
(``SimulatorAuthority``; its file is in the ready file). The meters keep API v1 on the same
device, as the vendor describes: a ``FakeHomeWizard`` with the same serial that the v2 device's
``api_v1_enabled`` switches; here it listens on another port of 127.0.0.1 (a real device has v1
on port 80 and v2 on port 443 of one address). The battery has no API v1.

Every ``interval`` seconds the values move (the meters' by their v1 fake's walk, which v2 then
serves under its own names; the battery charges and discharges within its limits) and every
device pushes ``measurement`` on its WebSocket at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
import math
import random
from typing import Any, Final

from .homewizard import FakeHomeWizard
from .homewizard_v2 import PRESS_PATH, FakeHomeWizardV2
from .tls import SimulatorAuthority


@dataclass(frozen=True, slots=True)
class V2Device:
    """One v2 device of the simulator: its port offsets (from the port base) and what it is."""

    name: str
    profile: str
    offset: int
    v1_offset: int | None
    description: str


V2_DEVICES: Final = (
    V2Device("p1v2", "HWE-P1", 10, 11, "P1 meter on API v2, a Plug-In Battery behind it"),
    V2Device("kwhv2", "HWE-KWH3", 12, 13, "kWh meter, 3 phases, on API v2"),
    V2Device("battery", "HWE-BAT", 14, None, "Plug-In Battery (API v2 only)"),
)
# The meter that controls the battery (its /api/batteries follows the battery).
BATTERY_CONTROLLER: Final = "p1v2"
BATTERY: Final = "battery"
# The Plug-In Battery: 2.7 kWh, at most 800 W either way.
BATTERY_CAPACITY_KWH: Final = 2.7
BATTERY_MAX_W: Final = 800.0


def v2_name(v1_key: str) -> str:
    """The API v2 name of a value of ``/api/v1/data``: no ``active_``, energy for total_power."""
    if v1_key.startswith("total_power_"):
        return "energy_" + v1_key.removeprefix("total_power_")
    return v1_key.removeprefix("active_")


def _iso(meter_timestamp: int) -> str:
    """A v1 meter time (the number YYMMDDhhmmss) as v2 writes it, YYYY-MM-DDThh:mm:ss."""
    digits = f"{meter_timestamp:012d}"
    date, time = digits[:6], digits[6:]
    return f"20{date[:2]}-{date[2:4]}-{date[4:]}T{time[:2]}:{time[2:4]}:{time[4:]}"


class LiveV2:
    """The v2 devices of ``V2_DEVICES`` and the v1 of the meters; ``run()`` moves and pushes."""

    def __init__(
        self, authority: SimulatorAuthority, *, start: datetime, seed: int, interval: float
    ) -> None:
        """Devices with certificates of ``authority`` and clocks at ``start``."""
        self.authority = authority
        self.interval = interval
        self.devices: dict[str, FakeHomeWizardV2] = {}
        self.v1: dict[str, FakeHomeWizard] = {}
        for index, spec in enumerate(V2_DEVICES):
            twin = None
            if spec.v1_offset is not None:
                twin = FakeHomeWizard(spec.profile, seed=seed + 10 + index, start=start)
                self.v1[spec.name] = twin
            fake = FakeHomeWizardV2(authority, spec.profile, v1=twin, push_interval=interval)
            if twin is not None:  # one device: the same serial and firmware on both APIs
                twin.device["serial"] = fake.serial
                twin.device["firmware_version"] = fake.device["firmware_version"]
            self.devices[spec.name] = fake
        self._rng = random.Random(seed)
        self._charged = float(self.devices[BATTERY].measurement["energy_import_kwh"])
        self._discharged = float(self.devices[BATTERY].measurement["energy_export_kwh"])
        self._uptime = 0.0
        self._uptime_at_start = {
            name: int(fake.system.get("uptime_s", 0)) for name, fake in self.devices.items()
        }
        self._copy_v1()

    async def start(self, port_base: int) -> None:
        """Listen at ``port_base`` + each offset (0: free ports), with the simulator's controls."""
        for spec in V2_DEVICES:
            port = port_base + spec.offset if port_base else 0
            await self.devices[spec.name].start(port, control=True)
            if spec.v1_offset is not None:
                v1_port = port_base + spec.v1_offset if port_base else 0
                await self.v1[spec.name].start(v1_port, control=True)

    async def stop(self) -> None:
        """Stop listening."""
        for name, fake in self.devices.items():
            await fake.stop()
            if name in self.v1:
                await self.v1[name].stop()

    async def run(self) -> None:
        """Every ``interval`` seconds: move the values, push them."""
        loop = asyncio.get_running_loop()
        last = tick = loop.time()
        while True:
            tick += self.interval
            await asyncio.sleep(max(0.0, tick - loop.time()))
            now = loop.time()
            self.advance(now - last)
            last, tick = now, max(tick, now - self.interval)  # late: no burst to catch up
            for fake in self.devices.values():
                fake.push()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on every device."""
        for twin in self.v1.values():
            twin.advance(seconds)
        self._copy_v1()
        self._walk_battery(seconds)
        self._uptime += seconds
        for name, fake in self.devices.items():
            fake.system["uptime_s"] = self._uptime_at_start[name] + int(self._uptime)

    def status(self) -> dict[str, Any]:
        """What the ready file says about the v2 devices."""
        devices: dict[str, Any] = {}
        for spec in V2_DEVICES:
            fake = self.devices[spec.name]
            devices[spec.name] = {
                "host": fake.host,
                "profile": spec.profile,
                "description": spec.description,
                "serial": fake.serial,
                "certificate_name": fake.server_hostname,
                "press": f"https://{fake.host}{PRESS_PATH}",
                "v1_host": self.v1[spec.name].host if spec.name in self.v1 else None,
            }
        return {
            "ca_file": str(self.authority.ca_file),
            "push_interval": self.interval,
            "devices": devices,
        }

    def _copy_v1(self) -> None:
        """The meters serve over v2 what their v1 measures (v2 names, ISO times)."""
        for name, twin in self.v1.items():
            measurement = self.devices[name].measurement
            data = twin.data
            for key, value in data.items():
                if (v2_key := v2_name(key)) in measurement and key != "external":
                    measurement[v2_key] = value
            for direction in ("import", "export"):  # single-register meters: T1 is the total
                if f"total_power_{direction}_kwh" not in data:
                    total = data.get(f"total_power_{direction}_t1_kwh")
                    if total is not None and f"energy_{direction}_kwh" in measurement:
                        measurement[f"energy_{direction}_kwh"] = total
            if "timestamp" in measurement:
                measurement["timestamp"] = twin.now.strftime("%Y-%m-%dT%H:%M:%S")
            v1_meters = {meter["type"]: meter for meter in data.get("external", ())}
            for meter in measurement.get("external", ()):
                if (source := v1_meters.get(meter["type"])) is not None:
                    meter["value"] = source["value"]
                    meter["timestamp"] = _iso(source["timestamp"])

    def _walk_battery(self, seconds: float) -> None:
        """The battery charges (power > 0) or discharges within its power and its charge."""
        measurement = self.devices[BATTERY].measurement
        power = measurement["power_w"] + self._rng.gauss(0.0, 40.0 * math.sqrt(seconds))
        power = min(max(power, -BATTERY_MAX_W), BATTERY_MAX_W)
        charge = float(measurement["state_of_charge_pct"])
        if (power > 0 and charge >= 100) or (power < 0 and charge <= 0):
            power = 0.0
        energy = power * seconds / 3_600_000
        if energy > 0:
            self._charged += energy
        else:
            self._discharged -= energy
        charge = min(max(charge + energy / BATTERY_CAPACITY_KWH * 100, 0.0), 100.0)
        measurement.update(
            power_w=round(power),
            current_a=round(power / measurement["voltage_v"], 2),
            state_of_charge_pct=round(charge, 1),
            energy_import_kwh=round(self._charged, 3),
            energy_export_kwh=round(self._discharged, 3),
        )
        batteries = self.devices[BATTERY_CONTROLLER].batteries
        if batteries is not None:
            batteries["power_w"] = round(power)
