"""The simulator's HomeWizard API v2 devices as ``python -m simulator`` runs them: live values,
the button, v1 on the same device, the WebSocket push at the rate asked for (the command line:
``tests/test_simulator.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
import ssl

from aiohttp import ClientSession
import pytest

from custom_components.meter_hub.api.homewizard.tls import create_ssl_context
from custom_components.meter_hub.api.homewizard.v2_client import HomeWizardV2Client
from simulator.live_v2 import LiveV2, v2_name
from simulator.tls import SimulatorAuthority

ROOT = Path(__file__).parents[1]
USER = "local/test"


@pytest.fixture
async def live(socket_enabled: None) -> AsyncIterator[LiveV2]:
    authority = SimulatorAuthority()
    devices = LiveV2(authority, start=datetime.now(UTC), seed=1, interval=0.05)
    await devices.start(0)
    yield devices
    await devices.stop()
    authority.cleanup()


def trust(live: LiveV2) -> ssl.SSLContext:
    return create_ssl_context(live.authority.ca_file)


async def paired(live: LiveV2, name: str, session: ClientSession) -> HomeWizardV2Client:
    """A client of device ``name`` with a token, the button pressed as a user does (HTTPS)."""
    device = live.status()["devices"][name]
    context = trust(live)
    async with session.post(
        device["press"], ssl=context, server_hostname=device["certificate_name"]
    ) as answer:
        assert answer.status == 204
    client = HomeWizardV2Client(
        session, device["host"], device_name=device["certificate_name"], ssl_context=context
    )
    await client.create_user(USER)
    return client


def test_v1_names_become_v2_names() -> None:
    assert v2_name("active_power_l1_w") == "power_l1_w"
    assert v2_name("total_power_import_t2_kwh") == "energy_import_t2_kwh"
    assert v2_name("active_apparent_power_va") == "apparent_power_va"
    assert v2_name("any_power_fail_count") == "any_power_fail_count"


async def test_values_move_and_v1_is_the_same_device(live: LiveV2) -> None:
    async with ClientSession() as session:
        p1 = await paired(live, "p1v2", session)
        _, before = await p1.measurement(p1.serial)
        live.advance(60.0)
        _, after = await p1.measurement(p1.serial)
        assert after.values["power_w"] != before.values["power_w"]
        assert after.values["energy_import_kwh"] >= before.values["energy_import_kwh"]
        assert after.values["uptime_s"] == before.values["uptime_s"] + 60
        # API v1 of the same device: its serial, its values
        v1 = live.status()["devices"]["p1v2"]["v1_host"]
        async with session.get(f"http://{v1}/api") as answer:
            assert (await answer.json())["serial"] == p1.serial
        async with session.get(f"http://{v1}/api/v1/data") as answer:
            data = await answer.json()
        assert data["active_power_w"] == after.values["power_w"]
        assert data["total_power_import_kwh"] == after.values["energy_import_kwh"]
        # api_v1_enabled (v2) switches v1 off
        live.devices["p1v2"].system["api_v1_enabled"] = True
        assert live.v1["p1v2"].api_enabled
        live.v1["p1v2"].api_enabled = False
        _, switched = await p1.measurement(p1.serial)
        assert switched.values["api_v1_enabled"] is False
        async with session.get(f"http://{v1}/api/v1/data") as answer:
            assert answer.status == 403


async def test_single_register_kwh_meter_serves_its_total(live: LiveV2) -> None:
    async with ClientSession() as session:
        meter = await paired(live, "kwhv2", session)
        live.advance(600.0)
        _, reading = await meter.measurement(meter.serial)
    data = live.v1["kwhv2"].data
    assert reading.values["energy_import_kwh"] == data["total_power_import_t1_kwh"]
    assert reading.values["power_w"] == data["active_power_w"]


async def test_battery_charges_within_its_limits_and_the_p1_meter_sees_it(live: LiveV2) -> None:
    battery = live.devices["battery"].measurement
    charged, discharged = battery["energy_import_kwh"], battery["energy_export_kwh"]
    for _ in range(200):
        live.advance(30.0)
        assert -800 <= battery["power_w"] <= 800
        assert 0 <= battery["state_of_charge_pct"] <= 100
        assert live.devices["p1v2"].batteries is not None
        assert live.devices["p1v2"].batteries["power_w"] == battery["power_w"]
    assert battery["energy_import_kwh"] >= charged
    assert battery["energy_export_kwh"] >= discharged
    assert (battery["energy_import_kwh"], battery["energy_export_kwh"]) != (charged, discharged)
    assert "battery" not in live.v1  # API v2 only


async def test_push_at_the_rate_asked_for(live: LiveV2) -> None:
    """At 20 messages a second, each pushed measurement carries the values that moved."""
    mover = asyncio.create_task(live.run())
    try:
        async with ClientSession() as session:
            p1 = await paired(live, "p1v2", session)
            assert p1.token is not None
            socket = await p1.open_websocket("/api/ws", 64 * 1024)
            assert (await socket.receive_json())["type"] == "authorization_requested"
            await socket.send_json({"type": "authorization", "data": p1.token})
            assert (await socket.receive_json())["type"] == "authorized"
            await socket.send_json({"type": "subscribe", "data": "measurement"})
            loop = asyncio.get_running_loop()
            times, powers = [], []
            while len(times) < 21:
                message = await asyncio.wait_for(socket.receive_json(), 5)
                assert message["type"] == "measurement"
                times.append(loop.time())
                powers.append(message["data"]["power_w"])
            await socket.close()
    finally:
        mover.cancel()
    interval = (times[-1] - times[1]) / 19  # the first is the answer to the subscription
    assert 0.03 < interval < 0.2, interval  # 0.05 asked for; a busy machine is late
    assert len(set(powers)) > 10, powers
