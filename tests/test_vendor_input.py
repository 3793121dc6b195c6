"""Text and external meters from devices and clouds (issue 13, items 5, 10, 14, 15, 16).

Strings a vendor sends are validated before they reach a state or a registry; external meters are
bounded in number and id length and scoped to the meter that reads them; the power factor keeps
every digit; a disabled entity and a stop during a poll stay quiet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import copy
from datetime import UTC
import logging
from typing import Any

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.json import json_bytes
import pytest

from custom_components.meter_hub import async_migrate_entry
from custom_components.meter_hub.api.homewizard.client import HomeWizardClient
from custom_components.meter_hub.api.homewizard.errors import NotHomeWizard
from custom_components.meter_hub.api.homewizard.parser import parse_data
from custom_components.meter_hub.api.iammeter import InvalidResponse, parse_meters_data
from custom_components.meter_hub.api.model import (
    MAX_EXTERNAL_METERS,
    MAX_ID_LENGTH,
    exact_percent,
    exact_sum,
    vendor_identifier,
    vendor_text,
)
from custom_components.meter_hub.compat import HAS_DEVICE_CONFIG_ENTRY_ID, device_config_entry_ids
from custom_components.meter_hub.const import DOMAIN
from simulator.homewizard import FakeHomeWizard

from .conftest import async_poll, async_setup_local, local_entry, meter_device

SURROGATE = "\ud800"
P1_SERIAL = "5c2fafa1b2c3"
OTHER_SERIAL = "5c2faf000002"
GAS_ID = "4730303539303033313233343536373138"
LOGGER_NAME = "custom_components.meter_hub"


# --- the one helper -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        SURROGATE,
        f"Lab{SURROGATE}",
        "\udfff",
        "a\x00b",
        "line\nforged",
        "tab\there",
        "bell\x07",
        "del\x7f",
        "c1\x85",
        "rtl\u202eoverride",
        "zero\u200bwidth",
        "para\u2029sep",
        "",
        "   ",
        "x" * 129,
        None,
        5,
        ["list"],
        b"bytes",
    ],
)
def test_vendor_text_rejects(raw: object) -> None:
    assert vendor_text(raw) is None


@pytest.mark.parametrize("raw", ["Meter Hub Lab", "Café ☕ 5G", "x" * 128, "ISKRA  2M550T-1012"])
def test_vendor_text_accepts(raw: str) -> None:
    assert vendor_text(raw) == raw


def test_vendor_identifier_bounds() -> None:
    assert vendor_identifier(47) == "47"
    assert vendor_identifier(True) is None
    assert vendor_identifier(-1) is None
    assert vendor_identifier("x" * MAX_ID_LENGTH) == "x" * MAX_ID_LENGTH
    assert vendor_identifier("x" * (MAX_ID_LENGTH + 1)) is None
    assert vendor_identifier(f"G{SURROGATE}") is None


def test_exact_arithmetic_never_rounds() -> None:
    assert exact_percent(0.81688) == 81.688
    assert exact_percent(0.57) == 57.0  # 0.57 * 100 is 56.99999999999999
    assert exact_percent(0.123456789) == 12.3456789
    assert exact_sum([0.1, 0.2]) == 0.3
    assert exact_sum([1.0001, 2.0002, 3.0003]) == 6.0006


# --- parsers --------------------------------------------------------------------------------------


def _p1_data() -> dict[str, Any]:
    return copy.deepcopy(FakeHomeWizard("HWE-P1").data)


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("wifi_ssid", "wifi_ssid"),
        ("meter_model", "meter_model"),
        ("unique_id", "meter_id"),
    ],
)
@pytest.mark.parametrize("bad", [SURROGATE, "evil\r\nline", "y" * 500])
def test_invalid_text_fields_are_dropped(field: str, key: str, bad: str) -> None:
    data = _p1_data()
    data[field] = bad
    reading = parse_data(data, product_type="HWE-P1", tz=UTC)
    assert key not in reading.values
    assert "total_power_import_kwh" not in data or "energy_import_kwh" in reading.values


def test_meter_id_decoded_only_to_valid_text() -> None:
    data = _p1_data()
    data["unique_id"] = "0a0d"  # hex of "\n\r": kept as the hex it came as
    reading = parse_data(data, product_type="HWE-P1", tz=UTC)
    assert reading.values["meter_id"] == "0a0d"


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("unique_id", f"G{SURROGATE}"),
        ("unique_id", "G\x00"),
        ("unique_id", "z" * 1025),
        ("type", f"gas_meter{SURROGATE}"),
        ("type", "gas\nmeter"),
    ],
)
def test_invalid_external_identity_drops_the_external_meter(field: str, bad: str) -> None:
    data = _p1_data()
    data.pop("total_gas_m3")
    data["external"][0][field] = bad
    reading = parse_data(data, product_type="HWE-P1", tz=UTC)
    assert [m.kind for m in reading.externals.values()] == ["water_meter"]


def test_invalid_external_unit_is_not_stated() -> None:
    data = _p1_data()
    data["external"][0]["unit"] = f"m3{SURROGATE}"
    reading = parse_data(data, product_type="HWE-P1", tz=UTC)
    assert reading.externals[f"gas_meter_{GAS_ID}"].unit is None


@pytest.mark.parametrize("bad", [f"DA2B{SURROGATE}", "DA2B\x00", "S" * 65, 12, ""])
def test_iammeter_invalid_sn_makes_the_answer_invalid(bad: object) -> None:
    entry = {"sn": bad, "values": [230.0, 1.0, 230.0, 10.0, 0.0], "gmtTime": "2024/2/22 3:46:20"}
    with pytest.raises(InvalidResponse, match="valid sn"):
        parse_meters_data([entry])


async def test_homewizard_invalid_serial_is_not_a_device(
    homewizard: FakeHomeWizard, socket_enabled: None
) -> None:
    async with aiohttp.ClientSession() as session:
        client = HomeWizardClient(session, homewizard.host)
        homewizard.device["serial"] = f"5c2f{SURROGATE}"
        with pytest.raises(NotHomeWizard, match="serial"):
            await client.device()
        homewizard.device["serial"] = P1_SERIAL
        homewizard.device["product_name"] = f"P1{SURROGATE}"
        homewizard.device["firmware_version"] = "4.19\n"
        device = await client.device()
    assert device.product_name is None
    assert device.firmware_version is None
    assert device.serial == P1_SERIAL


# --- Home Assistant: nothing invalid reaches a state or a registry ---------------------------------


def _assert_everything_saves(hass: HomeAssistant) -> None:
    """The recorder, the websocket and the registries encode with orjson, which refuses surrogates."""
    for state in hass.states.async_all():
        json_bytes(state.as_dict())
    json_bytes(er.async_get(hass)._data_to_save())
    json_bytes(dr.async_get(hass)._data_to_save())


async def test_surrogates_never_reach_states_or_registries(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    homewizard.data["wifi_ssid"] = f"Lab{SURROGATE}"
    homewizard.data["external"].append(
        {"unique_id": f"W{SURROGATE}", "type": "water_meter", "value": 1.0, "unit": "m3"}
    )
    homewizard.data["external"].append(
        {"unique_id": "W0002", "type": f"water{SURROGATE}", "value": 1.0, "unit": "m3"}
    )
    entry = local_entry(homewizard)
    homewizard.device["product_name"] = f"P1 meter{SURROGATE}"
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await async_poll(hass, freezer)

    ssid = f"{P1_SERIAL}_wifi_ssid"
    assert er.async_get(hass).async_get_entity_id("sensor", DOMAIN, ssid) is None  # not created
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 3  # the P1, its gas and its water meter: none of the invalid ones
    _assert_everything_saves(hass)

    # A valid SSID again is published.
    homewizard.data["wifi_ssid"] = "Lab"
    await async_poll(hass, freezer)
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, ssid)
    assert entity_id is not None
    assert hass.states.get(entity_id).state == "Lab"

    # And one that turns invalid later: unavailable, never published.
    homewizard.data["wifi_ssid"] = f"Lab{SURROGATE}"
    await async_poll(hass, freezer)
    assert hass.states.get(entity_id).state == "unavailable"
    _assert_everything_saves(hass)


# --- external meters: bounded, scoped -------------------------------------------------------------


def _flood(data: dict[str, Any], start: int, count: int = 150) -> None:
    data["external"] = data["external"][:2] + [
        {"unique_id": f"F{n:05d}", "type": "water_meter", "value": 1.0, "unit": "m3"}
        for n in range(start, start + count)
    ]


async def test_150_new_external_ids_per_poll_are_bounded(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await async_setup_local(hass, homewizard)
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    for poll in range(4):
        _flood(homewizard.data, poll * 150)
        await async_poll(hass, freezer)
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    subs = [device for device in devices if device.via_device_id is not None]
    assert len(subs) == MAX_EXTERNAL_METERS
    # the gas and water meters it had stay among them
    assert hass.states.get("sensor.gas_meter_gas").state != "unavailable"
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    sub_ids = {device.id for device in subs}
    assert sum(1 for e in entities if e.device_id in sub_ids) == 2 * MAX_EXTERNAL_METERS
    warnings = [r for r in caplog.records if "external meters" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "does not generate unique IDs" not in caplog.text

    # back within bounds: said once
    homewizard.data["external"] = homewizard.data["external"][:2]
    await async_poll(hass, freezer)
    await async_poll(hass, freezer)
    warnings = [r for r in caplog.records if "external meters" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.INFO]


async def test_over_long_external_ids_are_ignored_and_logged_once(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    homewizard.data["external"].append(
        {"unique_id": "L" * 100, "type": "water_meter", "value": 1.0, "unit": "m3"}
    )
    entry = await async_setup_local(hass, homewizard)
    for _ in range(3):
        await async_poll(hass, freezer)
    ids = {
        ident
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        for _, ident in device.identifiers
    }
    assert all(len(ident) <= len(P1_SERIAL) + 1 + 64 + 20 for ident in ids)
    assert not any("L" * 100 in e.unique_id for e in er.async_get(hass).entities.values())
    lines = [r for r in caplog.records if f"longer than {MAX_ID_LENGTH}" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING


@pytest.fixture
async def legacy_p1_meters(socket_enabled: None) -> AsyncIterator[tuple[FakeHomeWizard, ...]]:
    """Two P1 meters on old firmware: a gas meter in the legacy fields only, without an id."""
    fakes = (FakeHomeWizard("HWE-P1"), FakeHomeWizard("HWE-P1"))
    for fake, serial, gas in zip(fakes, (P1_SERIAL, OTHER_SERIAL), (100.5, 200.25), strict=True):
        fake.device["serial"] = serial
        del fake.data["external"]
        del fake.data["gas_unique_id"]
        fake.data["total_gas_m3"] = gas
        await fake.start()
    yield fakes
    for fake in fakes:
        await fake.stop()


async def test_two_p1_meters_with_legacy_gas_each_have_their_gas_sensor(
    hass: HomeAssistant,
    legacy_p1_meters: tuple[FakeHomeWizard, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = [await async_setup_local(hass, fake) for fake in legacy_p1_meters]
    entity_registry = er.async_get(hass)
    gas = {
        serial: entity_registry.async_get_entity_id(
            "sensor", DOMAIN, f"{serial}_gas_meter_legacy_gas_value"
        )
        for serial in (P1_SERIAL, OTHER_SERIAL)
    }
    assert None not in gas.values()
    assert hass.states.get(gas[P1_SERIAL]).state == "100.5"
    assert hass.states.get(gas[OTHER_SERIAL]).state == "200.25"
    assert "does not generate unique IDs" not in caplog.text
    owners = {
        entity_id: entity_registry.async_get(entity_id).config_entry_id
        for entity_id in gas.values()
    }
    assert set(owners.values()) == {entry.entry_id for entry in entries}

    # A restart (both entries set up again, the second one first) keeps the owners.
    for entry in reversed(entries):
        assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    for entity_id, owner in owners.items():
        assert entity_registry.async_get(entity_id).config_entry_id == owner
    assert hass.states.get(gas[P1_SERIAL]).state == "100.5"
    assert hass.states.get(gas[OTHER_SERIAL]).state == "200.25"
    for serial in (P1_SERIAL, OTHER_SERIAL):
        device = meter_device(hass, f"{serial}_gas_meter_legacy_gas")
        assert device is not None
        parent = meter_device(hass, serial)
        assert parent is not None
        assert device.via_device_id == parent.id


# --- migration of version 1 ids ---------------------------------------------------------------


async def test_version_1_ids_migrate_keeping_entity_ids_and_names(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    assert entry.version == 1
    device_registry, entity_registry = dr.async_get(hass), er.async_get(hass)
    parent = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, P1_SERIAL)}
    )
    gas_device = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"gas_meter_{GAS_ID}")},
    )
    device_registry.async_update_device(
        gas_device.id, via_device_id=parent.id, name_by_user="Gas in the cellar"
    )
    old = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"gas_meter_{GAS_ID}_value",
        config_entry=entry,
        device_id=gas_device.id,
        suggested_object_id="my_gas",
    )
    entity_registry.async_update_entity(old.entity_id, name="Cellar gas")
    own = entity_registry.async_get_or_create(
        "sensor", DOMAIN, f"{P1_SERIAL}_energy_import_kwh", config_entry=entry, device_id=parent.id
    )

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.version == 2
    migrated = entity_registry.async_get(old.entity_id)
    assert migrated is not None
    assert migrated.unique_id == f"{P1_SERIAL}_gas_meter_{GAS_ID}_value"
    assert migrated.name == "Cellar gas"
    assert hass.states.get(old.entity_id).state == "3312.874"
    assert entity_registry.async_get(own.entity_id).unique_id == own.unique_id
    device = meter_device(hass, f"{P1_SERIAL}_gas_meter_{GAS_ID}")
    assert device is not None
    assert device.id == gas_device.id
    assert device.name_by_user == "Gas in the cellar"
    assert meter_device(hass, f"gas_meter_{GAS_ID}") is None
    # no second gas sensor next to the migrated one
    gas_ids = [e for e in entity_registry.entities.values() if e.unique_id.endswith("_value")]
    assert len(gas_ids) == 2  # gas and water


@pytest.mark.skipif(
    HAS_DEVICE_CONFIG_ENTRY_ID, reason="a device belongs to one entry since 2026.8: none is shared"
)
@pytest.mark.parametrize("owner_first", [True, False])
async def test_version_1_device_shared_by_two_meters_goes_to_its_entities_owner(
    hass: HomeAssistant, legacy_p1_meters: tuple[FakeHomeWizard, ...], owner_first: bool
) -> None:
    owner, other = (local_entry(fake) for fake in legacy_p1_meters)
    owner.add_to_hass(hass)
    other.add_to_hass(hass)
    device_registry, entity_registry = dr.async_get(hass), er.async_get(hass)
    for entry, serial in ((owner, P1_SERIAL), (other, OTHER_SERIAL)):
        device_registry.async_get_or_create(
            config_entry_id=entry.entry_id, identifiers={(DOMAIN, serial)}
        )
    shared = device_registry.async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={(DOMAIN, "gas_meter_legacy_gas")}
    )
    shared = device_registry.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={(DOMAIN, "gas_meter_legacy_gas")}
    )
    assert device_config_entry_ids(hass, shared.id) == {owner.entry_id, other.entry_id}
    old = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        "gas_meter_legacy_gas_value",
        config_entry=owner,
        device_id=shared.id,
        suggested_object_id="house_gas",
    )
    for entry in (owner, other) if owner_first else (other, owner):
        assert await async_migrate_entry(hass, entry)
    kept = device_registry.async_get(shared.id)
    assert kept is not None
    assert device_config_entry_ids(hass, kept.id) == {owner.entry_id}
    assert kept.identifiers == {(DOMAIN, f"{P1_SERIAL}_gas_meter_legacy_gas")}

    assert await hass.config_entries.async_setup(owner.entry_id)  # sets up both
    await hass.async_block_till_done()
    assert entity_registry.async_get(old.entity_id).device_id == shared.id
    assert hass.states.get(old.entity_id).state == "100.5"
    theirs = meter_device(hass, f"{OTHER_SERIAL}_gas_meter_legacy_gas")
    assert theirs is not None
    assert device_config_entry_ids(hass, theirs.id) == {other.entry_id}


async def test_entry_of_a_newer_release_is_not_loaded(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, version=3)
    assert not await hass.config_entries.async_setup(entry.entry_id)


# --- power factor ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("device_profile", ["HWE-KWH1"])
async def test_power_factor_state_keeps_every_digit(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.data["active_power_factor"] = 0.81688
    await async_setup_local(hass, homewizard)
    state = hass.states.get("sensor.kwh_meter_power_factor")
    assert state.state == "81.688"


# --- disabled entities and stops --------------------------------------------------------------


async def test_disabling_one_entity_of_an_external_meter_leaves_its_sibling(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await async_setup_local(hass, homewizard)
    registry = er.async_get(hass)
    registry.async_update_entity("sensor.gas_meter_gas", disabled_by=er.RegistryEntryDisabler.USER)
    await hass.async_block_till_done()
    sibling = hass.states.get("sensor.gas_meter_last_reading")
    assert sibling is not None
    for _ in range(3):
        await async_poll(hass, freezer)
    assert "does not generate unique IDs" not in caplog.text
    assert hass.states.get("sensor.gas_meter_gas") is None
    assert hass.states.get("sensor.gas_meter_last_reading").state == sibling.state
    assert registry.async_get("sensor.gas_meter_gas").disabled_by is er.RegistryEntryDisabler.USER


async def test_poll_while_home_assistant_stops_is_quiet(
    hass: HomeAssistant, homewizard: FakeHomeWizard, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await async_setup_local(hass, homewizard)
    before = hass.states.get("sensor.p1_meter_energy_import").state
    # Home Assistant closes its web session while it stops; a poll runs into it.
    # (Around Home Assistant's guard against integrations that close it.)
    await aiohttp.ClientSession.close(async_get_clientsession(hass))
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == LOGGER_NAME]
    assert errors == []
    assert "Session is closed" not in caplog.text
    assert hass.states.get("sensor.p1_meter_energy_import").state == before


async def test_poll_failing_while_running_is_still_reported(
    hass: HomeAssistant, homewizard: FakeHomeWizard, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await async_setup_local(hass, homewizard)
    homewizard.status = 500
    await entry.runtime_data.coordinator.async_refresh()
    assert not entry.runtime_data.coordinator.last_update_success
    assert "Error fetching" in caplog.text
