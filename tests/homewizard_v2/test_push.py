"""The WebSocket push of a HomeWizard v2 device, against the simulator's real WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
import contextlib
from datetime import timedelta
import json
from pathlib import Path
import ssl
import statistics
import sys
import time
import tracemalloc
from typing import Any
from unittest.mock import patch

import aiohttp
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.api.homewizard.errors import CannotConnect, Unauthorized
from custom_components.meter_hub.api.homewizard.push import PushStream
from custom_components.meter_hub.api.homewizard.tls import create_ssl_context
from custom_components.meter_hub.api.homewizard.v2_client import HomeWizardV2Client
from custom_components.meter_hub.api.model import Reading
from custom_components.meter_hub.const import (
    CONF_PUSH,
    CONF_PUSH_INTERVAL_MS,
    DOMAIN,
    PUSH_STALE_AFTER,
)
from custom_components.meter_hub.coordinator import MeterHubData
from custom_components.meter_hub.local_coordinator import LocalCoordinator
from custom_components.meter_hub.push_link import BACKOFF_MAX, backoff_delay
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority
from tests.conftest import local_entry

USER = "local/home-assistant"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("integration_trusts_the_simulator")


@pytest.fixture
async def device(
    socket_enabled: None, authority: SimulatorAuthority
) -> AsyncIterator[FakeHomeWizardV2]:
    fake = FakeHomeWizardV2(authority, "HWE-P1")
    await fake.start()
    fake.users[USER] = TOKEN
    yield fake
    await fake.stop()


async def setup_entry(
    hass: HomeAssistant, fake: FakeHomeWizardV2, **options: object
) -> MockConfigEntry:
    entry = local_entry(fake, v2_token=TOKEN, **options)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def until(hass: HomeAssistant, condition: Callable[[], bool], within: float = 10) -> None:
    """Let real time pass until ``condition`` holds (the socket runs in real time)."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)
            await hass.async_block_till_done()


def power_id(hass: HomeAssistant, fake: FakeHomeWizardV2) -> str:
    found = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{fake.serial}_power_w")
    assert found is not None
    return found


def link_of(entry: MockConfigEntry) -> LocalCoordinator:
    coordinator = entry.runtime_data.coordinator
    assert isinstance(coordinator, LocalCoordinator)
    assert coordinator.push is not None
    return coordinator


async def test_power_is_pushed_and_polling_stops(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    assert coordinator.push is not None
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)
    assert coordinator.update_interval is None
    polls = device.request_count["/api/measurement"]
    entity = power_id(hass, device)
    for watts in (100, 250, -40):
        device.measurement["power_w"] = watts
        device.push()
        await until(hass, lambda w=watts: hass.states.get(entity).state == str(w))
    # every value came over the socket: no poll since it opened
    assert device.request_count["/api/measurement"] == polls
    assert device.request_count["/api/ws"] == 1


async def test_writes_are_coalesced(hass: HomeAssistant, device: FakeHomeWizardV2) -> None:
    """At most one update per publish interval; the newest value is the one shown."""
    entry = await setup_entry(hass, device, **{CONF_PUSH_INTERVAL_MS: 400})
    coordinator = link_of(entry)
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)
    entity = power_id(hass, device)
    written: list[str] = []

    def record(event: Event) -> None:
        if event.data["entity_id"] == entity:
            written.append(event.data["new_state"].state)

    hass.bus.async_listen("state_changed", record)
    for watts in range(1, 11):
        device.measurement["power_w"] = watts
        device.push()
        await asyncio.sleep(0.03)
    await until(hass, lambda: hass.states.get(entity).state == "10")
    # ten messages in about 0.3 s: one write at once at most, then the newest after the interval
    assert len(written) <= 2
    assert written[-1] == "10"


async def test_a_dropped_socket_reconnects_and_entities_stay_available(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    push = coordinator.push
    assert push is not None
    await until(hass, lambda: push.pushing)
    entity = power_id(hass, device)
    states: list[str] = []
    hass.bus.async_listen(
        "state_changed",
        lambda event: (
            states.append(event.data["new_state"].state)
            if event.data["entity_id"] == entity
            else None
        ),
    )
    # a Wi-Fi drop: the socket is cut, then the device reboots (its port is gone a moment)
    port = int(device.host.rsplit(":", 1)[1])
    await device.stop()
    await until(hass, lambda: not push.pushing)
    assert coordinator.update_interval is not None
    await asyncio.sleep(1)
    await device.start(port)
    device.measurement["power_w"] = 777
    await until(hass, lambda: push.pushing, within=15)
    await until(hass, lambda: hass.states.get(entity).state == "777")
    assert push.reconnects == 1
    assert STATE_UNAVAILABLE not in states
    assert coordinator.update_interval is None


async def test_revoked_token_on_the_socket_starts_the_reauth(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    push = coordinator.push
    assert push is not None
    await until(hass, lambda: push.pushing)
    device.revoke(USER)
    device.drop_sockets()
    await until(hass, lambda: push.state == "stopped")
    assert push.last_error is not None
    assert TOKEN not in push.last_error
    flows = entry.async_get_active_flows(hass, {SOURCE_REAUTH})
    assert len(list(flows)) == 1


async def test_polling_only_when_chosen(hass: HomeAssistant, device: FakeHomeWizardV2) -> None:
    entry = await setup_entry(hass, device, **{CONF_PUSH: False})
    await asyncio.sleep(0.2)
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.push is None  # type: ignore[attr-defined]
    assert "/api/ws" not in device.request_count


async def test_diagnostics_show_the_connection(
    hass: HomeAssistant, device: FakeHomeWizardV2, hass_client: ClientSessionGenerator
) -> None:
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)
    for watts in (1, 2, 3):
        device.measurement["power_w"] = watts
        device.push()
        await asyncio.sleep(0.05)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    push = diagnostics["source"]["push"]
    assert push["state"] == "pushing"
    assert push["reconnects"] == 0
    assert push["message_rate_per_s"] > 0
    assert push["publish_interval_ms"] == 0
    assert TOKEN not in json.dumps(diagnostics)


def test_backoff_grows_with_jitter_up_to_a_ceiling() -> None:
    assert backoff_delay(0, lambda low, high: low) == 0.5
    assert backoff_delay(3, lambda low, high: high) == 8
    assert backoff_delay(30, lambda low, high: high) == BACKOFF_MAX


# --- the stream alone: hostile devices and dead links -------------------------------------------


async def _stream(
    fake: FakeHomeWizardV2, trust: ssl.SSLContext, session: aiohttp.ClientSession, **kwargs: float
) -> PushStream:
    client = HomeWizardV2Client(
        session,
        fake.host,
        device_name=fake.server_hostname,
        ssl_context=trust,
        token=TOKEN,
        timeout=kwargs.pop("timeout", 10),
    )
    return PushStream(client, await client.device(), **kwargs)


async def test_a_device_that_never_answers_the_upgrade(
    device: FakeHomeWizardV2, trust: ssl.SSLContext
) -> None:
    async with aiohttp.ClientSession() as session:
        stream = await _stream(device, trust, session, timeout=0.5)
        device.hang_upgrade = True
        with pytest.raises(CannotConnect, match="did not upgrade"):
            await stream.run(lambda reading: None)


async def test_a_silent_socket_is_dead(device: FakeHomeWizardV2, trust: ssl.SSLContext) -> None:
    device.push_interval = 60
    readings: list[object] = []
    async with aiohttp.ClientSession() as session:
        stream = await _stream(device, trust, session, silence_limit=0.3)
        with pytest.raises(CannotConnect, match="silent"):
            await stream.run(readings.append)
    # the subscription's first measurement came, then nothing
    assert len(readings) >= 1


async def test_an_oversized_message_ends_the_socket(
    device: FakeHomeWizardV2, trust: ssl.SSLContext
) -> None:
    device.measurement["meter_model"] = "x" * 70_000
    async with aiohttp.ClientSession() as session:
        stream = await _stream(device, trust, session)
        with pytest.raises(CannotConnect, match="ended"):
            await stream.run(lambda reading: None)


async def test_a_refused_token_on_the_socket(
    device: FakeHomeWizardV2, trust: ssl.SSLContext
) -> None:
    device.revoke(USER)
    async with aiohttp.ClientSession() as session:
        client = HomeWizardV2Client(
            session, device.host, device_name=device.server_hostname, ssl_context=trust, token=TOKEN
        )
        device.users["local/other"] = "F" * 32
        client_device = await HomeWizardV2Client(
            session,
            device.host,
            device_name=device.server_hostname,
            ssl_context=trust,
            token="F" * 32,
        ).device()
        with pytest.raises(Unauthorized):
            await PushStream(client, client_device).run(lambda reading: None)


async def test_hostile_values_on_the_socket_are_dropped_like_on_rest(
    device: FakeHomeWizardV2, trust: ssl.SSLContext
) -> None:
    """A pushed message goes through the REST parsers: a value of the wrong kind is not used."""
    device.measurement["power_w"] = "1e999"
    device.measurement["meter_model"] = "\x1b[31mforged"
    device.push_interval = 60
    readings: list[Reading] = []
    async with aiohttp.ClientSession() as session:
        stream = await _stream(device, trust, session, silence_limit=0.3)
        with pytest.raises(CannotConnect):
            await stream.run(readings.append)
    values = readings[-1].values
    assert "power_w" not in values
    assert values.get("meter_model") != "\x1b[31mforged"
    assert values["energy_import_kwh"] == 13779.338
    # system and batteries merged into the same reading as a poll's
    assert values["wifi_rssi_db"] == -77
    assert values["battery_mode"] == "zero"


async def test_latency_from_the_device_to_the_state(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """Push at "as fast as the device sends": median under 100 ms, p99 under 500 ms."""
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)
    entity = power_id(hass, device)
    arrived: dict[str, float] = {}
    hass.bus.async_listen(
        "state_changed",
        lambda event: (
            arrived.setdefault(event.data["new_state"].state, time.perf_counter())
            if event.data["entity_id"] == entity
            else None
        ),
    )
    latencies = []
    for watts in range(1000, 1050):
        device.measurement["power_w"] = watts
        sent = time.perf_counter()
        device.push()
        await until(hass, lambda w=watts: str(w) in arrived)
        latencies.append(arrived[str(watts)] - sent)
    latencies.sort()
    median, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"push latency: median {median * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")  # noqa: T201
    assert median < 0.1
    assert p99 < 0.5


async def test_options_choose_push_and_its_interval(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device, **{CONF_PUSH: False})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert {str(key) for key in result["data_schema"].schema} >= {CONF_PUSH, CONF_PUSH_INTERVAL_MS}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"scan_interval": 2, CONF_PUSH: True, CONF_PUSH_INTERVAL_MS: 9000},
    )
    # never slower than the polls that stand in for the socket
    assert result["data"] == {"scan_interval": 2, CONF_PUSH: True, CONF_PUSH_INTERVAL_MS: 2000}
    await hass.async_block_till_done()
    coordinator = link_of(entry)
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)


# --- the keep-last-reading path, writes, and a slow Home Assistant -------------------------------


async def test_entities_keep_the_last_pushed_reading_up_to_the_stale_limit(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """While push reconnects, failed polls keep the last reading, then entities go unavailable."""
    assert timedelta(seconds=30) == PUSH_STALE_AFTER
    with patch(
        "custom_components.meter_hub.local_coordinator.PUSH_STALE_AFTER", timedelta(seconds=3)
    ):
        entry = await setup_entry(hass, device, scan_interval=1)
    coordinator = link_of(entry)
    push = coordinator.push
    assert push is not None
    await until(hass, lambda: push.pushing)
    entity = power_id(hass, device)
    device.measurement["power_w"] = 321
    device.push()
    await until(hass, lambda: hass.states.get(entity).state == "321")
    failed: list[BaseException] = []
    poll = coordinator._async_poll

    async def counted() -> MeterHubData:
        try:
            return await poll()
        except UpdateFailed as err:
            failed.append(err)
            raise

    with patch.object(coordinator, "_async_poll", counted):
        dropped = time.monotonic()
        await device.stop()
        await until(hass, lambda: len(failed) >= 1)
        # the device is gone, a poll failed: the last pushed value stands
        assert time.monotonic() - dropped < 3
        assert hass.states.get(entity).state == "321"
        assert coordinator.last_update_success
        await until(hass, lambda: hass.states.get(entity).state == STATE_UNAVAILABLE, within=8)
        # not before the stale limit
        assert time.monotonic() - dropped >= 3
    assert not push.pushing


async def test_unchanged_pushed_values_write_no_state(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device)
    coordinator = link_of(entry)
    await until(hass, lambda: coordinator.push is not None and coordinator.push.pushing)
    entity = power_id(hass, device)
    device.measurement["power_w"] = 555
    device.push()
    await until(hass, lambda: hass.states.get(entity).state == "555")
    updates: list[object] = []
    coordinator.async_add_listener(lambda: updates.append(None))
    written: list[str] = []

    @callback
    def of_power(data: Mapping[str, Any]) -> bool:
        return bool(data["entity_id"] == entity)

    for kind in ("state_changed", "state_reported"):
        hass.bus.async_listen(
            kind, lambda event: written.append(event.event_type), event_filter=of_power
        )
    for _ in range(5):
        device.push()
        await asyncio.sleep(0.03)
    await until(hass, lambda: len(updates) >= 5)
    # five messages reached the entities; none of them changed the power, none wrote it
    assert written == []
    device.measurement["power_w"] = 556
    device.push()
    await until(hass, lambda: hass.states.get(entity).state == "556")
    assert written == ["state_changed"]


# A device that sends as fast as its socket lets it, in a process of its own: the memory this
# process holds is then only the client's.
_FLOODING_DEVICE = """
import asyncio, sys
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

async def main():
    authority = SimulatorAuthority()
    fake = FakeHomeWizardV2(authority, "HWE-P1", push_interval=0)
    fake.users["local/home-assistant"] = sys.argv[1]
    await fake.start()
    print(fake.host, fake.server_hostname, authority.ca_file, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(fake.pushed, flush=True)
    await fake.stop()
    authority.cleanup()

asyncio.run(main())
"""


async def test_a_slow_home_assistant_never_queues_messages(socket_enabled: None) -> None:
    """A consumer that takes 5 ms per message under a device that sends without pause: the
    socket is read as fast as the consumer goes, so the memory held stays flat while the
    device gets far ahead (its messages wait in the socket's buffers, not in this process)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _FLOODING_DEVICE,
        TOKEN,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        host, name, ca_file = (await asyncio.wait_for(child.stdout.readline(), 30)).split()
        handled = 0
        traced: list[int] = []

        def slow(_reading: Reading) -> None:
            nonlocal handled
            handled += 1
            if handled in (200, 600):
                traced.append(tracemalloc.get_traced_memory()[0])
            time.sleep(0.005)  # a busy Home Assistant

        async with aiohttp.ClientSession() as session:
            client = HomeWizardV2Client(
                session,
                host.decode(),
                device_name=name.decode(),
                ssl_context=create_ssl_context(Path(ca_file.decode())),
                token=TOKEN,
            )
            stream = PushStream(client, await client.device())
            tracemalloc.start()
            task = asyncio.create_task(stream.run(slow))
            try:
                # the loop goes on meanwhile: the stream waits its turn after each message
                longest_gap = await longest_loop_gap(lambda: handled >= 600, within=30)
            finally:
                tracemalloc.stop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, CannotConnect):
                    await task
        child.stdin.write(b"done\n")
        await child.stdin.drain()
        pushed = int(await asyncio.wait_for(child.stdout.readline(), 30))
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        await child.wait()
    growth = traced[1] - traced[0]
    print(  # noqa: T201
        f"handled {handled}, sent {pushed}, growth {growth / 1024:.0f} KiB,"
        f" longest loop gap {longest_gap * 1000:.0f} ms"
    )
    # the device got thousands of messages ahead, this process held none of them
    assert pushed > handled + 1000
    assert growth < 512 * 1024
    # (the stream holding the loop until the socket's buffer is empty: seconds)
    assert longest_gap < 0.5


async def longest_loop_gap(condition: Callable[[], bool], within: float) -> float:
    """Tick every 10 ms until ``condition`` holds; the longest time between two ticks."""
    longest = 0.0
    async with asyncio.timeout(within):
        last = time.monotonic()
        while not condition():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
    return longest
