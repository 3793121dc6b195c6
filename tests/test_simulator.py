"""The simulator as people run it: ``python -m simulator`` and its local-API switch."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import json
from pathlib import Path
import signal
import sys

from aiohttp import ClientSession
import pytest

from custom_components.meter_hub.api.homewizard.tls import create_ssl_context
from simulator.homewizard import CONTROL_PATH, FakeHomeWizard
from simulator.iammeter import ManualClock, demo_account
from simulator.iammeter_local import CloudMeterOnLan
from simulator.live_v2 import V2_DEVICES

ROOT = Path(__file__).parents[1]


async def test_api_switch_turns_the_local_api_off_and_on(socket_enabled: None) -> None:
    fake = FakeHomeWizard("HWE-SKT")
    await fake.start(control=True)
    base = f"http://{fake.host}"
    try:
        async with ClientSession() as session:
            async with session.get(base + CONTROL_PATH) as answer:
                assert await answer.json() == {"api_enabled": True}
            async with session.post(base + CONTROL_PATH, data="false") as answer:
                assert await answer.json() == {"api_enabled": False}
            async with session.get(base + "/api/v1/data") as answer:
                assert answer.status == 403
                assert (await answer.json())["error"]["description"] == "API not enabled"
            async with session.post(base + CONTROL_PATH, json={"enabled": True}) as answer:
                assert await answer.json() == {"api_enabled": True}
            async with session.post(base + CONTROL_PATH, data="maybe") as answer:
                assert answer.status == 400
            async with session.get(base + "/api/v1/data") as answer:
                assert answer.status == 200
        assert fake.api_enabled
    finally:
        await fake.stop()


async def test_switch_is_only_there_when_asked_for(socket_enabled: None) -> None:
    """The tests' fakes keep the vendor's paths only."""
    fake = FakeHomeWizard("HWE-SKT")
    await fake.start()
    try:
        async with (
            ClientSession() as session,
            session.post(f"http://{fake.host}{CONTROL_PATH}", data="false") as answer,
        ):
            assert answer.status in (404, 405)
        assert fake.api_enabled
    finally:
        await fake.stop()


@pytest.mark.timeout(60)
async def test_python_m_simulator_serves_every_fake_and_stops(
    socket_enabled: None, tmp_path: Path
) -> None:
    ready = tmp_path / "simulator.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--port-base",
        "0",
        "--api-disabled",
        "water",
        "--push-rate",
        "5",
        "--ready-file",
        str(ready),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readuntil(b"(true: on again)\n"), 30)
        assert b"IAMMETER cloud" in banner
        status = json.loads(ready.read_text(encoding="utf-8"))
        assert sorted(status["devices"]) == ["p1", "socket", "water"]
        assert [m["phases"] for m in status["cloud"]["meters"]] == [1, 1, 3, 3]
        assert [m["net_metering"] for m in status["cloud"]["meters"]] == [0, 0, 0, 1]
        for device in status["devices"].values():
            assert device["host"].startswith("127.0.0.1:")
        async with ClientSession() as session:
            p1 = status["devices"]["p1"]["host"]
            async with session.get(f"http://{p1}/api") as answer:
                assert (await answer.json())["product_type"] == "HWE-P1"
            async with session.get(f"http://{p1}/api/v1/data") as answer:
                types = [meter["type"] for meter in (await answer.json())["external"]]
                assert types == ["gas_meter", "water_meter"]
            water = status["devices"]["water"]["host"]
            async with session.get(f"http://{water}/api/v1/data") as answer:
                assert answer.status == 403
            local = status["iammeter_local"]
            assert {name: meter["model"] for name, meter in local.items()} == {
                "wem3080": "WEM3080",
                "wem3080t": "WEM3080T",
                "wem3080t_nem": "WEM3080T",
                "wem3162": "WEM3162",
            }
            nem = local["wem3080t_nem"]["host"]
            async with session.get(f"http://{nem}/api/monitor") as answer:
                assert answer.status == 400  # just started: not ready yet
            secured = local["wem3080t"]["host"]
            async with session.get(f"http://{secured}/monitorjson") as answer:
                assert answer.status == 401
            cloud = status["cloud"]
            async with session.post(
                cloud["url"] + "/api/v1/user/login",
                json={"userName": cloud["username"], "password": cloud["password"]},
            ) as answer:
                assert (await answer.json())["successful"] is True
            # the HomeWizard API v2 devices, their CA, the button
            v2 = status["homewizard_v2"]
            assert sorted(v2["devices"]) == sorted(spec.name for spec in V2_DEVICES)
            assert v2["push_interval"] == 0.2
            battery = v2["devices"]["battery"]
            assert battery["certificate_name"] == f"appliance/battery/{battery['serial']}"
            assert battery["v1_host"] is None
            ca_file = Path(v2["ca_file"])
            context = create_ssl_context(ca_file)  # the simulator's CA, in its file
            async with session.post(
                battery["press"], ssl=context, server_hostname=battery["certificate_name"]
            ) as answer:
                assert answer.status == 204
        press = f"curl -k -X POST {v2['devices']['p1v2']['press']}\n".encode()
        assert press in await asyncio.wait_for(process.stdout.readuntil(b"/_sim/press\n"), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert not ready.exists()
    assert not await asyncio.to_thread(ca_file.exists)  # the CA goes with the simulator


async def test_the_demo_solar_meter_answers_locally_as_in_the_cloud(
    socket_enabled: None,
) -> None:
    """Same serial; counters at or past the cloud's last upload; power moves every few seconds."""
    clock = ManualClock()
    solar = demo_account().meter("17A5C0DE")
    fake = CloudMeterOnLan(solar, clock)
    await fake.start()
    powers = []
    try:
        async with ClientSession() as session:
            for _ in range(3):
                async with session.get(f"http://{fake.host}/api/monitor") as answer:
                    body = await answer.json()
                assert body["SN"] == solar.sn
                _, _, power, imported, exported, *_ = body["Data"]
                uploaded = solar.values(solar.last_upload(clock()), 7)[0]
                assert imported >= uploaded[3]
                assert exported >= uploaded[4]
                assert power < 0  # solar: exports
                powers.append(power)
                clock.advance(timedelta(seconds=CloudMeterOnLan.JITTER_PERIOD_S))
    finally:
        await fake.stop()
    assert len(set(powers)) == 3
