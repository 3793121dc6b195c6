"""IAMMETER meters in Home Assistant: every shape of the vendor document, totals, devices.

The fake cloud runs on 127.0.0.1 and is read over real HTTP. Where exact vendor numbers matter,
the vendor document's own ``metersdata`` example is served raw (``inject_fault``); elsewhere the
fake computes the values from the (frozen) clock and the test asks the fake what it sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import ATTR_DEVICE_CLASS, STATE_OFF, STATE_ON, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.meter_hub.api.iammeter import parse_meters_data
from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN, CloudCoordinator
from custom_components.meter_hub.const import CLOUD_SCAN_INTERVAL
from simulator.iammeter import (
    DEMO_LOGIN,
    FakeIamMeterCloud,
    FakeMeter,
    Phase,
    vendor_example_account,
)

from .conftest import async_poll, async_setup_cloud, meter_device

FIXTURES = Path(__file__).parent / "fixtures" / "iammeter"
VENDOR_METERSDATA = (FIXTURES / "metersdata.json").read_bytes()
POLL = (CLOUD_SCAN_INTERVAL + POLL_MARGIN).total_seconds()

SINGLE = "Single-phase meter (WEM3080)"
THREE = "Three-phase meter"


def sensor_id(sn: str, name: str) -> str:
    return f"sensor.iammeter_{sn.lower()}_{name}"


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def assert_sensors(hass: HomeAssistant, sn: str, expected: dict[str, str]) -> None:
    """Every sensor of meter ``sn`` has exactly the states of ``expected`` (device classes and
    units are in the snapshot of ``test_entities``)."""
    prefix = f"sensor.iammeter_{sn.lower()}_"
    found = {
        state.entity_id.removeprefix(prefix): state.state
        for state in hass.states.async_all("sensor")
        if state.entity_id.startswith(prefix)
    }
    assert found == expected


def assert_device(hass: HomeAssistant, sn: str, model: str | None) -> dr.DeviceEntry:
    device = meter_device(hass, sn)
    assert device is not None, sn
    assert (device.manufacturer, device.model, device.serial_number, device.name) == (
        "IAMMETER",
        model,
        sn,
        f"IAMMETER {sn}",
    )
    return device


def phase(n: int, *values: str) -> dict[str, str]:
    """States of phase ``n``'s voltage, current, power, import and export sensors."""
    names = ("voltage", "current", "power", "energy_import", "energy_export")
    return {f"{name}_phase_{n}": value for name, value in zip(names, values, strict=True)}


# --- the vendor document's metersdata example, served as the vendor wrote it --------------------


async def test_every_meter_of_the_vendor_example(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, entity_registry_enabled_by_default: None
) -> None:
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    entry = await async_setup_cloud(hass, cloud)

    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(device.serial_number or "" for device in devices) == sorted(
        ["DA2BED94", "B384789C", "674B1E5D", "59C9AB8D", "3FE34ABE"]
    )

    # Single-phase, 5 values: V, I, P, import, export.
    assert_device(hass, "DA2BED94", SINGLE)
    assert_sensors(
        hass,
        "DA2BED94",
        {
            "voltage": "223.71",
            "current": "1.74",
            "power": "225.0",
            "grid_power": "225.0",
            "energy_import": "14761.03",
            "energy_export": "0.0",
            "last_upload": "2024-02-22T03:46:20+00:00",
        },
    )

    # Three-phase with net metering and phase C all null: the totals are the net row (never the
    # sum of the phases, 30216.48 kWh), the power total is unavailable (a phase is missing), the
    # grid power is the net row's; the net row is no fourth phase.
    assert_device(hass, "B384789C", THREE)
    assert_sensors(
        hass,
        "B384789C",
        {
            **phase(1, "248.9", "13.9", "3356.0", "21228.0", "0.0"),
            **phase(2, "248.9", "13.9", "-2747.0", "8988.48", "18489.44"),
            "voltage": "248.9",
            "power": STATE_UNAVAILABLE,
            "grid_power": "-2747.0",
            "energy_import": "8988.48",
            "energy_export": "18489.44",
            "last_upload": "2024-02-22T03:45:15+00:00",
        },
    )
    assert_device(hass, "59C9AB8D", THREE)
    assert_sensors(
        hass,
        "59C9AB8D",
        {
            **phase(1, "245.3", "6.5", "1604.0", "46055.7", "0.0"),
            **phase(2, "245.3", "6.5", "-910.0", "15726.73", "8956.56"),
            "voltage": "245.3",
            "power": STATE_UNAVAILABLE,
            "grid_power": "-910.0",
            "energy_import": "15726.73",
            "energy_export": "8956.56",
            "last_upload": "2024-02-22T03:45:15+00:00",
        },
    )

    # Three-phase, 5 values per phase: the totals are the sums of the phases.
    assert_device(hass, "674B1E5D", THREE)
    assert_sensors(
        hass,
        "674B1E5D",
        {
            **phase(1, "220.4", "1.86", "377.0", "5345.985", "20.565"),
            **phase(2, "220.4", "1.86", "377.0", "5367.715", "0.033"),
            **phase(3, "220.5", "1.86", "377.0", "5369.532", "0.033"),
            "power": "1131.0",
            "grid_power": "1131.0",
            "energy_import": "16083.232",
            "energy_export": "20.631",
            "last_upload": "2024-02-22T03:45:50+00:00",
        },
    )

    # Three-phase, 7 values per phase: frequency and power factor (in percent) per phase.
    assert_device(hass, "3FE34ABE", THREE)
    assert_sensors(
        hass,
        "3FE34ABE",
        {
            **phase(1, "230.0", "15.9", "3650.1", "2704.35", "0.0"),
            **phase(2, "230.0", "-11.5", "-2650.1", "1411.31", "1722.35"),
            **phase(3, "230.0", "4.3", "1000.0", "1946.03", "0.0"),
            **{f"frequency_phase_{n}": "49.99" for n in (1, 2, 3)},
            **{f"power_factor_phase_{n}": "94.0" for n in (1, 2, 3)},
            "power": "2000.0",
            "grid_power": "2000.0",
            "energy_import": "6061.69",
            "energy_export": "1722.35",
            "last_upload": "2024-02-22T03:46:01+00:00",
        },
    )


async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    cloud: FakeIamMeterCloud,
    entity_registry_enabled_by_default: None,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor of the vendor example's meters: registry entry and state."""
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    with patch("custom_components.meter_hub.PLATFORMS", [Platform.SENSOR]):
        entry = await async_setup_cloud(hass, cloud)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_rarely_used_sensors_are_disabled_by_default(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    entry = await async_setup_cloud(hass, cloud)
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    disabled = sorted(
        e.entity_id for e in entities if e.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    )
    assert disabled == sorted(
        sensor_id("3FE34ABE", f"{name}_phase_{n}")
        for name in ("frequency", "power_factor")
        for n in (1, 2, 3)
    )
    # sensors: 7 single-phase, 16 for each net meter without phase C, 20 and 26 three-phase;
    # and one binary sensor per meter
    assert len(entities) == 7 + 16 + 16 + 20 + 26 + 5
    last_upload = entity_registry_entry(hass, sensor_id("DA2BED94", "last_upload"))
    assert last_upload.entity_category is not None
    assert last_upload.entity_category.value == "diagnostic"


def entity_registry_entry(hass: HomeAssistant, entity_id: str) -> er.RegistryEntry:
    entry = er.async_get(hass).async_get(entity_id)
    assert entry is not None, entity_id
    return entry


async def test_single_phase_seven_values(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, entity_registry_enabled_by_default: None
) -> None:
    """The demo account's 17A5C0DE sends 7 values and exports: negative grid power."""
    await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    meter = cloud.account(DEMO_LOGIN[0]).meter("17A5C0DE")
    at = meter.last_upload(cloud.clock())
    v, i, p, imp, exp, hz, pf = meter.values(at, 7, flat_single=True)
    assert p < 0
    assert_device(hass, "17A5C0DE", SINGLE)
    assert_sensors(
        hass,
        "17A5C0DE",
        {
            "voltage": str(float(v)),
            "current": str(float(i)),
            "power": str(float(p)),
            "grid_power": str(float(p)),
            "energy_import": str(float(imp)),
            "energy_export": str(float(exp)),
            "frequency": str(float(hz)),
            "power_factor": str(round(pf * 100, 1)),
            "last_upload": at.isoformat(),
        },
    )


async def test_net_metering_counters_follow_the_net_row(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """A full net-metering meter (demo 4EA5C0DE): totals from the net row, power summed."""
    await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    meter = cloud.account(DEMO_LOGIN[0]).meter("4EA5C0DE")
    for _ in range(3):
        at = meter.last_upload(cloud.clock())
        rows = meter.values(at, 7)
        net = rows[3]
        assert state_of(hass, sensor_id("4EA5C0DE", "energy_import")) == str(net[3])
        assert state_of(hass, sensor_id("4EA5C0DE", "energy_export")) == str(net[4])
        assert state_of(hass, sensor_id("4EA5C0DE", "grid_power")) == str(net[2])
        phase_sum = round(sum(row[2] for row in rows[:3]), 3)
        assert state_of(hass, sensor_id("4EA5C0DE", "power")) == str(phase_sum)
        # the sum of the phase counters is far from the net counters: never taken for them
        assert sum(row[3] for row in rows[:3]) > 10 * net[3]
        assert hass.states.get(sensor_id("4EA5C0DE", "power_phase_4")) is None
        await async_poll(hass, freezer, POLL)


# --- totals only when every phase is present ----------------------------------------------------


async def test_missing_phase_makes_totals_unavailable_never_smaller(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    meter = cloud.account(DEMO_LOGIN[0]).meter("37A5C0DE")
    totals = ("power", "energy_import", "energy_export", "grid_power")
    before = {name: float(state_of(hass, sensor_id("37A5C0DE", name))) for name in totals}
    assert before["energy_import"] > 70_000

    phases = meter.phases
    meter.phases = (phases[0], phases[1], None)
    await async_poll(hass, freezer, POLL)
    for name in totals:
        assert state_of(hass, sensor_id("37A5C0DE", name)) == STATE_UNAVAILABLE, name
    assert state_of(hass, sensor_id("37A5C0DE", "power_phase_3")) == STATE_UNAVAILABLE
    assert state_of(hass, sensor_id("37A5C0DE", "energy_import_phase_3")) == STATE_UNAVAILABLE
    assert float(state_of(hass, sensor_id("37A5C0DE", "energy_import_phase_1"))) > 32_354

    meter.phases = phases
    await async_poll(hass, freezer, POLL)
    rows = meter.values(meter.last_upload(cloud.clock()), 7)
    after = float(state_of(hass, sensor_id("37A5C0DE", "energy_import")))
    assert after == round(sum(row[3] for row in rows), 3)
    assert after > before["energy_import"]
    assert state_of(hass, sensor_id("37A5C0DE", "power")) == str(
        round(sum(row[2] for row in rows), 3)
    )


async def test_meter_that_never_uploaded_keeps_its_place(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """values null does not fail the poll: the meter is kept, unavailable, not uploading."""
    account = cloud.account(DEMO_LOGIN[0])
    account.meters.append(
        FakeMeter("5EA5C0DE", (Phase(800, 10.5, 0),), never_uploaded=True, upload_second=7)
    )
    entry = await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    assert entry.runtime_data.coordinator.last_update_success
    assert_device(hass, "5EA5C0DE", None)
    assert_sensors(
        hass,
        "5EA5C0DE",
        dict.fromkeys(
            ("power", "grid_power", "energy_import", "energy_export", "last_upload"),
            STATE_UNAVAILABLE,
        ),
    )
    assert state_of(hass, "binary_sensor.iammeter_5ea5c0de_uploading") == STATE_OFF
    # the other meters are read as usual
    assert float(state_of(hass, sensor_id("10A5C0DE", "energy_import"))) > 1766

    # it starts uploading: values, model and an "Uploading" that is on
    account.meters[-1].never_uploaded = False
    await async_poll(hass, freezer, POLL)
    assert_device(hass, "5EA5C0DE", SINGLE)
    at = account.meters[-1].last_upload(cloud.clock())
    assert state_of(hass, sensor_id("5EA5C0DE", "last_upload")) == at.isoformat()
    assert float(state_of(hass, sensor_id("5EA5C0DE", "energy_import"))) > 10.5
    assert state_of(hass, "binary_sensor.iammeter_5ea5c0de_uploading") == STATE_ON


def test_null_values_in_a_stored_or_live_answer() -> None:
    payload = json.loads(VENDOR_METERSDATA)["data"]
    payload.append({"sn": "00NEW000", "values": None, "gmtTime": None})
    meters = parse_meters_data(payload)
    assert len(meters) == 6
    new = meters["00NEW000"]
    assert (new.shape, new.measured_at, new.reading.values) == (None, None, {})
    assert new.meter_info.model is None
    assert new.meter_info.name == "IAMMETER 00NEW000"
    assert set(new.reading.expected) == {
        "power_w",
        "grid_power_w",
        "energy_import_kwh",
        "energy_export_kwh",
        "measured_at",
    }


# --- grid power sign, last upload, uploading --------------------------------------------------------


async def test_grid_power_is_positive_for_import(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    assert float(state_of(hass, sensor_id("10A5C0DE", "grid_power"))) > 0  # takes 180 W
    assert float(state_of(hass, sensor_id("17A5C0DE", "grid_power"))) < 0  # exports 1500 W
    state = hass.states.get(sensor_id("17A5C0DE", "grid_power"))
    assert state is not None
    assert state.attributes["friendly_name"] == "IAMMETER 17A5C0DE Grid power"


async def test_meter_that_stops_uploading_shows_it(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    meter = cloud.account(DEMO_LOGIN[0]).meter("10A5C0DE")
    uploading = "binary_sensor.iammeter_10a5c0de_uploading"
    state = hass.states.get(uploading)
    assert state is not None
    assert (state.state, state.attributes[ATTR_DEVICE_CLASS]) == (STATE_ON, "connectivity")

    last = meter.last_upload(cloud.clock())
    meter.offline.append((last + timedelta(seconds=1), None))
    await async_poll(hass, freezer, POLL)
    # 5 minutes without upload: not yet overdue
    assert state_of(hass, uploading) == STATE_ON
    await async_poll(hass, freezer, POLL)
    await async_poll(hass, freezer, POLL)
    # more than 10 minutes: clearly shown, while the last values and their time stay
    assert state_of(hass, uploading) == STATE_OFF
    assert state_of(hass, sensor_id("10A5C0DE", "last_upload")) == last.isoformat()
    assert state_of(hass, sensor_id("10A5C0DE", "energy_import")) != STATE_UNAVAILABLE
    # the other meters still upload
    assert state_of(hass, "binary_sensor.iammeter_17a5c0de_uploading") == STATE_ON

    meter.offline[-1] = (last + timedelta(seconds=1), cloud.clock())
    await async_poll(hass, freezer, POLL)
    assert state_of(hass, uploading) == STATE_ON
    assert datetime.fromisoformat(
        state_of(hass, sensor_id("10A5C0DE", "last_upload"))
    ) > last.replace(tzinfo=UTC)


# --- meters that come and go ------------------------------------------------------------------


async def test_added_meter_appears_without_reload(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    coordinator = entry.runtime_data.coordinator
    cloud.account(DEMO_LOGIN[0]).meters.append(
        FakeMeter(
            "6EA5C0DE",
            (Phase(100, 1.0, 0), Phase(200, 2.0, 0), Phase(300, 3.0, 0)),
            metersdata_row=5,
            upload_second=12,
        )
    )
    await async_poll(hass, freezer, POLL)
    assert entry.runtime_data.coordinator is coordinator  # no reload
    assert_device(hass, "6EA5C0DE", THREE)
    assert float(state_of(hass, sensor_id("6EA5C0DE", "energy_import"))) > 6.0
    assert float(state_of(hass, sensor_id("6EA5C0DE", "power"))) > 0
    assert state_of(hass, "binary_sensor.iammeter_6ea5c0de_uploading") == STATE_ON


async def test_removed_meter_loses_its_device(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud, DEMO_LOGIN)
    assert CloudCoordinator.device_gone_after == timedelta(minutes=15)
    account = cloud.account(DEMO_LOGIN[0])
    account.meters = [meter for meter in account.meters if meter.sn != "10A5C0DE"]
    registry = dr.async_get(hass)

    def device() -> dr.DeviceEntry | None:
        return meter_device(hass, "10A5C0DE")

    for _ in range(6):
        await async_poll(hass, freezer, 60)
    assert len(cloud.calls) == 2
    gone_at = cloud.calls[1].at  # the first answer without the meter
    assert state_of(hass, sensor_id("10A5C0DE", "energy_import")) == STATE_UNAVAILABLE
    for _ in range(20):
        if device() is None:
            break
        await async_poll(hass, freezer, 60)
    assert device() is None
    # gone from the account's list for 15 minutes (checked once a minute): the device goes
    assert timedelta(minutes=15) <= cloud.clock() - gone_at <= timedelta(minutes=17)
    assert hass.states.get(sensor_id("10A5C0DE", "energy_import")) is None
    assert er.async_get(hass).async_get(sensor_id("10A5C0DE", "energy_import")) is None
    # the other meters stay
    devices = dr.async_entries_for_config_entry(registry, entry.entry_id)
    assert sorted(device.serial_number or "" for device in devices) == [
        "17A5C0DE",
        "37A5C0DE",
        "4EA5C0DE",
    ]


async def test_failed_polls_keep_the_devices(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """An account that cannot be read says nothing about its meters: none is removed."""
    entry = await async_setup_cloud(hass, cloud)
    cloud.inject_fault(20, status=503)
    for _ in range(8):
        await async_poll(hass, freezer, POLL)
    assert not entry.runtime_data.coordinator.last_update_success
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == len(vendor_example_account().meters)


# --- counters never dip -----------------------------------------------------------------------


async def test_counter_glitch_never_reaches_the_state(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """One answer with a lower (or zero) counter: the published total holds, then goes on."""
    await async_setup_cloud(hass, cloud)
    entity_id = sensor_id("DA2BED94", "energy_import")
    seen = [float(state_of(hass, entity_id))]

    glitch = json.loads(VENDOR_METERSDATA)
    glitch["data"][0]["values"][3] = 0  # DA2BED94 import kWh
    cloud.inject_fault(endpoint="metersdata", body=json.dumps(glitch).encode())
    await async_poll(hass, freezer, POLL)
    seen.append(float(state_of(hass, entity_id)))
    assert seen[-1] == seen[0]

    for _ in range(3):
        await async_poll(hass, freezer, POLL)
        seen.append(float(state_of(hass, entity_id)))
    assert seen == sorted(seen)
    assert seen[-1] > seen[0]
