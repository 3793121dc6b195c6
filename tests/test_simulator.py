"""The simulator as people run it: ``python -m simulator`` and its local-API switch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import signal
import sys

from aiohttp import ClientSession
import pytest

from simulator.homewizard import CONTROL_PATH, FakeHomeWizard

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
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert not ready.exists()
