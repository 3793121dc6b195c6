"""The fault matrix of issue 7: every fault as one row of a table, for both sources.

Each ``FaultCase`` names a fault, how to inject it into the fake (a real HTTP server on
127.0.0.1), how to take it away, and what the design says the entities do meanwhile:

* ``SOURCE``: the source as a whole is broken. Local: every entity is unavailable from the first
  failed poll. Cloud: every entity keeps the last reading while it is younger than 15 minutes,
  then is unavailable. One log line when it goes bad, one when it recovers.
* ``PARTIAL``: some data points or meters are not reported: their entities (``unavailable``, as
  ``fnmatch`` patterns of entity ids) are unavailable, every other entity stays. No log line.
* ``NONE``: nothing the user relies on changes (extra keys, a new meter, a refreshed token).

``run_case`` drives one case through Home Assistant and returns what it found; the test asserts
on it and ``fault_records`` writes the figures for ``scripts/faults``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatch
from ipaddress import ip_address
import json
import math
import tracemalloc
from typing import Any, Final, Literal

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.const import GROUP_ID_USER
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Context, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.meter_hub.api.model import MAX_EXTERNAL_METERS
from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN, CloudCoordinator
from custom_components.meter_hub.const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_STALE_AFTER,
    DOMAIN,
    IAMMETER_LOCAL_SCAN_INTERVAL,
)
from custom_components.meter_hub.counter_guard import CounterGuard, rise_bound
from custom_components.meter_hub.history_planning import (
    Sample,
    SampleSeries,
    StatRow,
    plan_backfill,
)
from custom_components.meter_hub.history_recorder import HISTORY_COUNTER_RESET
from simulator import hostile
from simulator.homewizard import PROFILES, FakeHomeWizard
from simulator.iammeter import (
    DEMO_LOGIN,
    VENDOR_EXAMPLE_LOGIN,
    FakeIamMeterCloud,
    FakeMeter,
    Phase,
    vendor_example_account,
)
from simulator.iammeter_local import FakeIamMeter

from .conftest import meter_device
from .fault_records import CounterWatch, LogWatch, booked, describe

LOCAL_POLL = timedelta(seconds=5)
CLOUD_POLL = CLOUD_SCAN_INTERVAL + POLL_MARGIN
# Longer than the HomeWizard client's 10 s and the IAMMETER client's 20 s timeouts.
PAST_TIMEOUT = timedelta(seconds=21)
# A fault that lasts "for good" (taken away by ``restore``).
FOREVER = 10_000


class Outage(StrEnum):
    """What a fault does to the entities, by design."""

    SOURCE = "source"
    PARTIAL = "partial"
    NONE = "none"


@dataclass
class Run:
    """One case in progress: Home Assistant, the fake, the entry, and the watches."""

    hass: HomeAssistant
    freezer: FrozenDateTimeFactory
    entry: MockConfigEntry
    logs: LogWatch
    counters: CounterWatch
    port: int
    homewizard: FakeHomeWizard | None = None
    cloud: FakeIamMeterCloud | None = None
    # an IAMMETER meter on the local network, its state before the case, its requests meanwhile
    iammeter: FakeIamMeter | None = None
    iammeter_state: dict[str, Any] = field(default_factory=dict)
    iammeter_requests_during: int = 0
    others: list[FakeHomeWizard] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False

    @property
    def fake(self) -> FakeHomeWizard:
        """The HomeWizard device of a local case."""
        assert self.homewizard is not None
        return self.homewizard

    @property
    def cloud_fake(self) -> FakeIamMeterCloud:
        """The cloud of a cloud case."""
        assert self.cloud is not None
        return self.cloud

    @property
    def coordinator(self) -> Any:
        """The entry's coordinator."""
        return self.entry.runtime_data.coordinator


type Step = Callable[[Run], Awaitable[None]]
type Check = Callable[[Run], list[str]]


@dataclass(frozen=True, kw_only=True)
class FaultCase:
    """One row of the matrix."""

    source: Literal["local", "cloud", "iammeter"]
    name: str
    covers: tuple[str, ...]  # the fault kinds of the issue this row stands for
    inject: Step
    outage: Outage
    restore: Step | None = None  # besides putting the fake back as it was
    unavailable: tuple[str, ...] = ()  # PARTIAL: entity id patterns unavailable meanwhile
    appears: tuple[str, ...] = ()  # entity id patterns that must appear meanwhile
    polls: int = 3  # polls with the fault (cloud SOURCE: until the reading is stale)
    recover_within: timedelta | None = None  # default: the first poll after the restore
    check: Check | None = None  # more checks, after the recovery
    back: Check | None = None  # what else must be back for the case to have recovered
    lines: int | None = None  # log lines when it goes bad and when it recovers (None: by outage)
    recovery_lines: int | None = None  # when it recovers, if not ``lines``
    # counters the counter guard holds back meanwhile: one log line each going bad and back
    held: int = 0

    @property
    def id(self) -> str:
        """The case id (pytest id and record name)."""
        return f"{self.source}-{self.name}"


# --- local: injecting faults into the fake HomeWizard device ------------------------------------

P1 = "sensor.p1_meter"
IMPORT = f"{P1}_energy_import"
POWER = f"{P1}_power"
OTHER_SERIAL = "5c2faf999999"
OTHER_IMPORT = 99999.0


def _data(change: Callable[[dict[str, Any]], None]) -> Step:
    async def inject(run: Run) -> None:
        change(run.fake.data)

    return inject


def _set(key: str, value: object) -> Step:
    return _data(lambda data: data.__setitem__(key, value))


def _drop(*keys: str) -> Step:
    def change(data: dict[str, Any]) -> None:
        for key in keys:
            data.pop(key, None)

    return _data(change)


def _attr(name: str, value: object) -> Step:
    async def inject(run: Run) -> None:
        setattr(run.fake, name, value)

    return inject


async def _refuse_connections(run: Run) -> None:
    await run.fake.stop()
    run.stopped = True


async def _other_device(run: Run) -> None:
    """The address now belongs to another P1 meter with its own (very different) readings."""
    await run.fake.stop()
    run.stopped = True
    other = FakeHomeWizard("HWE-P1")
    other.device["serial"] = OTHER_SERIAL
    other.data["total_power_import_kwh"] = OTHER_IMPORT
    other.data["active_power_w"] = 4000
    other.data["external"][1]["value"] = 99999.5
    await other.start(run.port)
    run.others.append(other)


def _other_device_never_lands(run: Run) -> list[str]:
    problems: list[str] = []
    landed = [(e, s) for e, s in run.history if s in ("99999.0", "4000", "99999.5")]
    if landed:
        problems.append(f"the other device's readings reached the states: {landed}")
    if set(run.coordinator.data) != {PROFILES["HWE-P1"].device["serial"]}:
        problems.append(f"the coordinator holds {sorted(run.coordinator.data)}")
    if meter_device(run.hass, OTHER_SERIAL) is not None:
        problems.append("the other device got a device in this entry")
    return problems


def _without_phases_2_3(data: dict[str, Any]) -> None:
    for key in list(data):
        if "_l2_" in key or "_l3_" in key:
            del data[key]


def _no_reauth_left(run: Run) -> list[str]:
    """After the recovery no reauth flow and no repair issue is left over."""
    flows = run.hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    issues = [
        issue_id
        for (_, issue_id) in ir.async_get(run.hass).issues
        if run.entry.entry_id in issue_id
    ]
    problems = [f"flow {flow['context']['source']} left open" for flow in flows]
    problems.extend(f"repair issue {issue_id} left open" for issue_id in issues)
    return problems


_HEAT = {"unique_id": "H0001", "type": "heat_meter", "timestamp": 250115120000, "value": 12.5}


def _add_heat_meter(data: dict[str, Any]) -> None:
    data["external"].append({**_HEAT, "unit": "GJ"})


# --- local: text and external meters (issue 13, items 5, 10, 14) ---------------------------------

SURROGATE = "\ud800"  # valid JSON ("\\ud800"), but no state, registry or log line can encode it
FORGED_LINE = "Lab\r\n2026-01-01 00:00:00.000 ERROR (MainThread) [homeassistant] forged"
SSID = f"{P1}_wi_fi_ssid"
GAS = "sensor.gas_meter_*"
WATER = "sensor.water_meter_*"
LEGACY_SERIAL = "5c2faf000002"


def _everything_saves(run: Run) -> list[str]:
    """States and registries still encode (the recorder, websocket and storage use orjson)."""
    problems: list[str] = []
    for what, data in (
        ("states", [state.as_dict() for state in run.hass.states.async_all()]),
        ("entity registry", er.async_get(run.hass)._data_to_save()),
        ("device registry", dr.async_get(run.hass)._data_to_save()),
    ):
        try:
            json_bytes(data)
        except TypeError as err:
            problems.append(f"the {what} cannot be saved: {err}")
    return problems


def _external(index: int, key: str, value: object) -> Step:
    return _data(lambda data: data["external"][index].__setitem__(key, value))


async def _device_text(run: Run, key: str, value: object) -> None:
    """The device restarts (new connections: ``/api`` is read again) with ``key`` set to ``value``."""
    await run.fake.stop()
    run.fake.device[key] = value
    await run.fake.start(run.port)


def _flood(data: dict[str, Any]) -> None:
    data["external"].extend(
        {"unique_id": f"F{n:04d}", "type": "water_meter", "value": 1.0, "unit": "m3"}
        for n in range(150)
    )


def _sub_devices_bounded(run: Run) -> list[str]:
    devices = dr.async_entries_for_config_entry(dr.async_get(run.hass), run.entry.entry_id)
    subs = [device for device in devices if device.via_device_id is not None]
    if len(subs) > MAX_EXTERNAL_METERS:
        return [f"{len(subs)} external meter devices, more than {MAX_EXTERNAL_METERS}"]
    return _everything_saves(run)


def _no_long_ids(run: Run) -> list[str]:
    registry = er.async_get(run.hass)
    long_ids = [e.unique_id for e in registry.entities.values() if len(e.unique_id) > 120]
    return [f"entities with over-long ids: {long_ids[:3]}"] if long_ids else []


def _legacy_gas_without_id(data: dict[str, Any]) -> None:
    data.pop("external", None)
    data.pop("gas_unique_id", None)


async def _second_p1_with_legacy_gas(run: Run) -> None:
    """Both P1 meters on old firmware: gas in the legacy fields, without an id of its own."""
    _legacy_gas_without_id(run.fake.data)
    other = FakeHomeWizard("HWE-P1")
    other.device["serial"] = LEGACY_SERIAL
    _legacy_gas_without_id(other.data)
    other.data["total_gas_m3"] = 77.5
    await other.start()
    run.others.append(other)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Second P1 meter",
        unique_id=LEGACY_SERIAL,
        version=2,
        data={"source": "local", "host": other.host, "serial": LEGACY_SERIAL},
    )
    entry.add_to_hass(run.hass)
    assert await run.hass.config_entries.async_setup(entry.entry_id)


async def _unload_second_p1(run: Run) -> None:
    for entry in run.hass.config_entries.async_entries(DOMAIN):
        if entry.entry_id != run.entry.entry_id:
            await run.hass.config_entries.async_unload(entry.entry_id)


def _each_p1_has_its_gas(run: Run) -> list[str]:
    """Each P1 meter's legacy gas meter got an entity of that meter's entry."""
    registry = er.async_get(run.hass)
    owners = {
        serial: entry.config_entry_id
        for serial in (PROFILES["HWE-P1"].device["serial"], LEGACY_SERIAL)
        if (
            entry := registry.async_get(
                registry.async_get_entity_id(
                    "sensor", DOMAIN, f"{serial}_gas_meter_legacy_gas_value"
                )
                or ""
            )
        )
    }
    entries = {entry.entry_id for entry in run.hass.config_entries.async_entries(DOMAIN)}
    problems = [] if set(owners.values()) == entries else [f"legacy gas sensors: {owners}"]
    return problems + _everything_saves(run)


STRING_LOCAL_CASES: tuple[FaultCase, ...] = (
    *(
        FaultCase(
            source="local",
            name=f"ssid-{kind}",
            covers=(f"text-{kind}",),
            inject=_set("wifi_ssid", value),
            outage=Outage.PARTIAL,
            unavailable=(SSID,),
            check=_everything_saves,
        )
        for kind, value in (
            ("surrogate", f"Lab{SURROGATE}"),
            ("control", FORGED_LINE),
            # far over the text bound, under the 64 KiB body cap (a larger body fails whole)
            ("oversized", "L" * 30_000),
        )
    ),
    FaultCase(
        source="local",
        name="meter-model-surrogate",
        covers=("text-surrogate",),
        inject=_set("meter_model", f"ISKRA{SURROGATE}"),
        outage=Outage.PARTIAL,
        unavailable=(f"{P1}_smart_meter_model",),
        check=_everything_saves,
    ),
    FaultCase(
        source="local",
        name="external-id-surrogate",
        covers=("text-surrogate",),
        inject=_external(1, "unique_id", f"W{SURROGATE}"),
        outage=Outage.PARTIAL,
        unavailable=(WATER,),
        check=_sub_devices_bounded,
    ),
    FaultCase(
        source="local",
        name="external-type-control",
        covers=("text-control",),
        inject=_external(1, "type", "water\nmeter"),
        outage=Outage.PARTIAL,
        unavailable=(WATER,),
        check=_sub_devices_bounded,
    ),
    *(
        # Text that only describes: dropped, the entities stay. A serial is the identity: no
        # device with a bogus id, the source is broken until it sends a valid one.
        FaultCase(
            source="local",
            name=name,
            covers=("text-surrogate",),
            inject=inject,
            outage=outage,
            check=_everything_saves,
        )
        for name, inject, outage in (
            ("external-unit-surrogate", _external(1, "unit", f"m3{SURROGATE}"), Outage.NONE),
            (
                "device-name-surrogate",
                lambda run: _device_text(run, "product_name", f"P1{SURROGATE}"),
                Outage.NONE,
            ),
            (
                "device-serial-surrogate",
                lambda run: _device_text(run, "serial", f"5c2f{SURROGATE}"),
                Outage.SOURCE,
            ),
        )
    ),
    FaultCase(
        source="local",
        name="external-ids-150-new",
        covers=("external-flood",),
        inject=_data(_flood),
        outage=Outage.NONE,
        # one warning when it goes bad, one line when it is back within bounds
        lines=1,
        check=_sub_devices_bounded,
    ),
    FaultCase(
        source="local",
        name="external-id-208-chars",
        covers=("external-id-length",),
        inject=_external(1, "unique_id", "5730" * 52),
        outage=Outage.PARTIAL,
        unavailable=(WATER,),
        lines=1,
        check=_no_long_ids,
    ),
    FaultCase(
        source="local",
        name="two-p1-meters-legacy-gas",
        covers=("external-scope",),
        inject=_second_p1_with_legacy_gas,
        outage=Outage.PARTIAL,
        unavailable=(GAS, WATER),
        # the legacy gas meter of each P1 meter: its own entity
        appears=("sensor.gas_meter_gas_*",),
        restore=_unload_second_p1,
        check=_each_p1_has_its_gas,
    ),
)


LOCAL_CASES: tuple[FaultCase, ...] = (
    FaultCase(
        source="local",
        name="connection-refused",
        covers=("connection-refused",),
        inject=_refuse_connections,
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="local",
        name="never-answers",
        covers=("no-answer",),
        inject=_attr("hang", True),
        outage=Outage.SOURCE,
    ),
    *(
        FaultCase(
            source="local",
            name=f"http-{status}",
            covers=(f"http-{status}",),
            inject=_attr("status", status),
            outage=Outage.SOURCE,
            back=_no_reauth_left,
        )
        for status in (500, 502, 503, 404, 403, 401)
    ),
    FaultCase(
        source="local",
        name="api-disabled-error-202",
        covers=("http-403",),
        inject=_attr("api_enabled", False),
        outage=Outage.SOURCE,
        back=_no_reauth_left,
    ),
    FaultCase(
        source="local",
        name="empty-body",
        covers=("empty-body",),
        inject=_attr("body", b""),
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="local",
        name="invalid-json",
        covers=("invalid-json",),
        inject=_attr("body", b'{"active_power_w": 12,'),
        outage=Outage.SOURCE,
    ),
    *(
        FaultCase(
            source="local",
            name=f"json-{kind}-everywhere",
            covers=(f"json-{kind}",),
            inject=_attr("body", body),
            outage=Outage.SOURCE,
        )
        for kind, body in (
            ("list", b"[1, 2]"),
            ("string", b'"ok"'),
            ("number", b"42"),
            ("null", b"null"),
        )
    ),
    *(
        FaultCase(
            source="local",
            name=f"data-json-{kind}",
            covers=(f"json-{kind}",),
            inject=_attr("data", value),
            outage=Outage.SOURCE,
        )
        for kind, value in (("list", [{"active_power_w": 1}]), ("string", "ok"), ("number", 7.5))
    ),
    FaultCase(
        source="local",
        name="data-json-null",
        covers=("json-null",),
        inject=_attr("data", None),
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="local",
        name="field-string-power",
        covers=("field-string",),
        inject=_set("active_power_w", "-412"),
        outage=Outage.PARTIAL,
        unavailable=(POWER,),
    ),
    *(
        FaultCase(
            source="local",
            name=f"field-{kind}-energy",
            covers=(f"field-{kind}",),
            inject=_set("total_power_import_kwh", value),
            outage=Outage.PARTIAL,
            unavailable=(IMPORT,),
        )
        for kind, value in (
            ("string", "15234.567"),
            ("nan", math.nan),
            ("infinity", math.inf),
            ("negative-kwh", -15234.567),
            ("1e308", 1e308),
        )
    ),
    FaultCase(
        source="local",
        name="field-negative-infinity-power",
        covers=("field-infinity",),
        inject=_set("active_power_l1_w", -math.inf),
        outage=Outage.PARTIAL,
        unavailable=(f"{POWER}_phase_1",),
    ),
    FaultCase(
        source="local",
        name="field-wrong-types-external",
        covers=("field-string", "field-negative-kwh"),
        inject=_data(
            lambda data: (
                data["external"][0].__setitem__("value", "3312.874"),
                data["external"][1].__setitem__("value", -1.0),
            )
        ),
        outage=Outage.PARTIAL,
        unavailable=("sensor.gas_meter_gas", "sensor.water_meter_water"),
    ),
    FaultCase(
        source="local",
        name="keys-missing-counter",
        covers=("keys-missing",),
        inject=_drop("total_power_import_kwh", "active_power_w"),
        outage=Outage.PARTIAL,
        unavailable=(IMPORT, POWER),
    ),
    FaultCase(
        source="local",
        name="keys-missing-all",
        covers=("keys-missing",),
        inject=_attr("data", {}),
        outage=Outage.PARTIAL,
        unavailable=("sensor.*",),
    ),
    FaultCase(
        source="local",
        name="keys-missing-device",
        covers=("keys-missing",),
        inject=lambda run: _drop_device_key(run, "serial"),
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="local",
        name="extra-keys",
        covers=("extra-keys",),
        inject=_data(
            lambda data: data.update(
                {"active_power_l4_w": 5, "future_counter_kwh": 1.0, "nested": {"a": [1, None]}}
            )
        ),
        outage=Outage.NONE,
    ),
    FaultCase(
        source="local",
        name="three-phase-turns-one-phase",
        covers=("three-to-one-phase",),
        inject=_data(_without_phases_2_3),
        outage=Outage.PARTIAL,
        unavailable=(f"{P1}_*_phase_2", f"{P1}_*_phase_3"),
    ),
    FaultCase(
        source="local",
        name="external-meter-disappears",
        covers=("external-disappears",),
        inject=_data(lambda data: data["external"].pop(1)),
        outage=Outage.PARTIAL,
        unavailable=("sensor.water_meter_*",),
    ),
    FaultCase(
        source="local",
        name="external-meter-appears",
        covers=("external-appears",),
        inject=_data(_add_heat_meter),
        outage=Outage.NONE,
        appears=("sensor.heat_meter_*",),
    ),
    FaultCase(
        source="local",
        name="another-device-at-the-address",
        covers=("other-device",),
        inject=_other_device,
        outage=Outage.SOURCE,
        check=_other_device_never_lands,
    ),
    *STRING_LOCAL_CASES,
)


async def _drop_device_key(run: Run, key: str) -> None:
    """The device restarts (new connections) and its ``/api`` answer lacks ``key``.

    ``/api`` is read on each new connection: over the one that was checked, a device cannot
    have changed.
    """
    await run.fake.stop()
    run.fake.device.pop(key, None)
    await run.fake.start(run.port)


async def _restore_local(run: Run) -> None:
    fake = run.fake
    for other in run.others:
        await other.stop()
    run.others.clear()
    profile = PROFILES[fake.profile]
    fake.device = copy.deepcopy(profile.device)
    fake.data = copy.deepcopy(profile.data)
    fake.status = None
    fake.body = None
    fake.api_enabled = True
    fake.respond = None
    fake.release()
    if run.stopped:
        await fake.start(run.port)
        run.stopped = False


# --- cloud: injecting faults into the fake IAMMETER cloud ---------------------------------------

SINGLE_SN = "DA2BED94"  # single-phase, 5 values: V, I, P, import, export
THREE_SN = "3FE34ABE"  # three-phase, 7 values per row
NEW_SN = "A1B2C3D4"


def _cloud_sensor(sn: str, name: str) -> str:
    return f"sensor.iammeter_{sn.lower()}_{name}"


def _answer(data: object, **envelope: object) -> bytes:
    return json.dumps({"data": data, "successful": True, "message": None, **envelope}).encode()


def _serve(body: bytes, status: int = 200, **fault: Any) -> Step:
    """Answer every metersdata call with ``body`` until restored."""

    async def inject(run: Run) -> None:
        run.cloud_fake.inject_fault(
            FOREVER, status=status, body=body, endpoint="metersdata", **fault
        )

    return inject


def _serve_changed(change: Callable[[list[dict[str, Any]]], None], **envelope: object) -> Step:
    """Answer every metersdata call with the last good answer, changed by ``change``."""

    async def inject(run: Run) -> None:
        data = copy.deepcopy(run.coordinator.client.last_meters_payload)
        change(data)
        await _serve(_answer(data, **envelope))(run)

    return inject


def _meter(data: list[dict[str, Any]], sn: str) -> dict[str, Any]:
    return next(entry for entry in data if entry["sn"] == sn)


def _single_field(index: int, value: object) -> Callable[[list[dict[str, Any]]], None]:
    def change(data: list[dict[str, Any]]) -> None:
        _meter(data, SINGLE_SN)["values"][index] = value

    return change


def _three_phase_field(
    row: int, index: int, value: object
) -> Callable[[list[dict[str, Any]]], None]:
    def change(data: list[dict[str, Any]]) -> None:
        _meter(data, THREE_SN)["values"][row][index] = value

    return change


def _phases_b_c_gone(data: list[dict[str, Any]]) -> None:
    rows = _meter(data, THREE_SN)["values"]
    rows[1] = [None] * len(rows[1])
    rows[2] = [None] * len(rows[2])


def _single_row(data: list[dict[str, Any]]) -> None:
    meter = _meter(data, THREE_SN)
    meter["values"] = meter["values"][0]


async def _cloud_refuses_connections(run: Run) -> None:
    await run.cloud_fake.stop()
    run.stopped = True


async def _expire_tokens(run: Run) -> None:
    run.cloud_fake.expire_tokens()


async def _hang(run: Run) -> None:
    run.cloud_fake.inject_fault(FOREVER, hang_s=25, endpoint="metersdata")


async def _other_client_reads_first(run: Run) -> None:
    """Another client of the account (the user's script) reads the meters just before us."""
    coordinator: CloudCoordinator = run.coordinator
    assert coordinator.fetched_at is not None
    run.freezer.move_to(coordinator.fetched_at + CLOUD_SCAN_INTERVAL + timedelta(seconds=1))
    cloud = run.cloud_fake
    token = cloud.issue_token(VENDOR_EXAMPLE_LOGIN[0])
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{cloud.url}/api/v1/site/metersdata", params={"token": token}) as response,
    ):
        assert response.status == 200
        assert (await response.json())["successful"]
    # our poll, due a moment before, runs now
    await _tick(run, POLL_MARGIN)


async def _other_client_logs_in_5_times(run: Run) -> None:
    """Another client at this IP used up the hourly logins; then the cloud drops our token."""
    cloud = run.cloud_fake
    username, password = VENDOR_EXAMPLE_LOGIN
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.post(
                f"{cloud.url}/api/v1/user/login", json={"userName": username, "password": password}
            ) as response:
                assert (await response.json())["successful"]
    cloud.expire_tokens()


async def _login_answers_nothing(run: Run) -> None:
    run.cloud_fake.inject_fault(1, status=200, body=b"", endpoint="login")
    run.cloud_fake.expire_tokens()


def _account_meters(change: Callable[[list[FakeMeter]], None]) -> Step:
    async def inject(run: Run) -> None:
        change(run.cloud_fake.account(VENDOR_EXAMPLE_LOGIN[0]).meters)

    return inject


def _drop_single(meters: list[FakeMeter]) -> None:
    meters[:] = [meter for meter in meters if meter.sn != SINGLE_SN]


def _add_new(meters: list[FakeMeter]) -> None:
    meters.append(FakeMeter(NEW_SN, (Phase(500, 100.0, 0),), upload_second=40))


def _logins(count: int) -> Check:
    def check(run: Run) -> list[str]:
        made = [call for call in run.cloud_fake.calls if call.endpoint == "login"]
        return [] if len(made) == count else [f"{len(made)} logins, expected {count}"]

    return check


def _within_limits(run: Run) -> list[str]:
    over = [call for call in run.cloud_fake.calls if call.over_limit]
    return [f"calls over a vendor limit: {over}"] if over else []


BAD_IMPORT = (_cloud_sensor(SINGLE_SN, "energy_import"),)
THREE_TOTALS = tuple(
    _cloud_sensor(THREE_SN, name)
    for name in ("power", "grid_power", "energy_import", "energy_export")
)

# --- cloud: text (issue 13, item 5) --------------------------------------------------------------


def _sn(value: object) -> Callable[[list[dict[str, Any]]], None]:
    def change(data: list[dict[str, Any]]) -> None:
        _meter(data, SINGLE_SN)["sn"] = value

    return change


# An answer whose SN is not valid text is broken as a whole: no device with a bogus id.
STRING_CLOUD_CASES: tuple[FaultCase, ...] = tuple(
    FaultCase(
        source="cloud",
        name=f"sn-{kind}",
        covers=(f"text-{kind}",),
        inject=_serve_changed(_sn(value)),
        outage=Outage.SOURCE,
        check=_everything_saves,
    )
    for kind, value in (
        ("surrogate", f"DA2B{SURROGATE}"),
        ("control", "DA2B\nED94"),
        ("oversized", "S" * 100_000),
    )
)


CLOUD_CASES: tuple[FaultCase, ...] = (
    FaultCase(
        source="cloud",
        name="connection-refused",
        covers=("connection-refused",),
        inject=_cloud_refuses_connections,
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="cloud",
        name="never-answers",
        covers=("no-answer",),
        inject=_hang,
        outage=Outage.SOURCE,
    ),
    *(
        FaultCase(
            source="cloud",
            name=f"http-{status}",
            covers=(f"http-{status}",),
            inject=_serve(b"<html>error</html>", status=status),
            outage=Outage.SOURCE,
        )
        for status in (500, 502, 503, 404)
    ),
    *(
        # The cloud rejects the token: sign in again (within the login budget), keep the reading
        # while it is fresh.
        FaultCase(
            source="cloud",
            name=f"http-{status}",
            covers=(f"http-{status}",),
            inject=_serve(b"", status=status),
            outage=Outage.SOURCE,
            check=_within_limits,
            back=_no_reauth_left,
        )
        for status in (403, 401)
    ),
    FaultCase(
        source="cloud",
        name="empty-body",
        covers=("empty-body", "rate-limit-polling"),
        # "The API will return nothing" once, right at the 5 minutes after the last good call:
        # asked again 5 minutes later, and meanwhile the reading stands.
        inject=lambda run: _inject_once(run, body=b""),
        outage=Outage.NONE,
    ),
    FaultCase(
        source="cloud",
        name="empty-body-again",
        covers=("empty-body", "rate-limit-polling"),
        # "Nothing" again 5 minutes later: a limit was hit; no call for 30 minutes.
        inject=lambda run: _inject_once(run, body=b"", count=2),
        outage=Outage.SOURCE,
        recover_within=timedelta(minutes=35),
    ),
    FaultCase(
        source="cloud",
        name="invalid-json",
        covers=("invalid-json",),
        inject=_serve(b'{"data": [{"sn": "DA2BED94", "values": [1,'),
        outage=Outage.SOURCE,
    ),
    *(
        FaultCase(
            source="cloud",
            name=f"json-{kind}",
            covers=(f"json-{kind}",),
            inject=_serve(body),
            outage=Outage.SOURCE,
        )
        for kind, body in (
            ("list", b"[]"),
            ("string", b'"ok"'),
            ("number", b"42"),
            ("null", b"null"),
        )
    ),
    *(
        FaultCase(
            source="cloud",
            name=f"data-json-{kind}",
            covers=(f"json-{kind}",),
            inject=_serve(_answer(value)),
            outage=Outage.SOURCE,
        )
        for kind, value in (
            ("list-of-numbers", [1, 2]),
            ("string", "ok"),
            ("number", 3),
            ("null", None),
        )
    ),
    FaultCase(
        source="cloud",
        name="field-string",
        covers=("field-string",),
        inject=_serve_changed(_single_field(3, "14761.03")),
        outage=Outage.PARTIAL,
        unavailable=BAD_IMPORT,
    ),
    *(
        FaultCase(
            source="cloud",
            name=f"field-{kind}",
            covers=(f"field-{kind}",),
            inject=_serve_changed(_single_field(3, value)),
            outage=Outage.PARTIAL,
            unavailable=BAD_IMPORT,
        )
        for kind, value in (
            ("nan", math.nan),
            ("infinity", math.inf),
            ("negative-kwh", -14761.03),
            ("1e308", 1e308),
        )
    ),
    FaultCase(
        source="cloud",
        name="field-nan-in-a-phase",
        covers=("field-nan",),
        # phase B's import is gone: so is the total (a sum never shrinks by a missing part)
        inject=_serve_changed(_three_phase_field(1, 3, math.nan)),
        outage=Outage.PARTIAL,
        unavailable=(
            _cloud_sensor(THREE_SN, "energy_import_phase_2"),
            _cloud_sensor(THREE_SN, "energy_import"),
        ),
    ),
    FaultCase(
        source="cloud",
        name="field-wrong-types-in-a-phase",
        covers=("field-string", "field-1e308", "field-infinity"),
        inject=_serve_changed(
            lambda data: (
                _three_phase_field(0, 0, "230")(data),
                _three_phase_field(0, 2, 1e308)(data),
                _three_phase_field(2, 4, -math.inf)(data),
            )
        ),
        outage=Outage.PARTIAL,
        unavailable=(
            _cloud_sensor(THREE_SN, "voltage_phase_1"),
            _cloud_sensor(THREE_SN, "power_phase_1"),
            _cloud_sensor(THREE_SN, "energy_export_phase_3"),
            # the sums of the broken parts; import still adds up
            _cloud_sensor(THREE_SN, "power"),
            _cloud_sensor(THREE_SN, "grid_power"),
            _cloud_sensor(THREE_SN, "energy_export"),
        ),
    ),
    FaultCase(
        source="cloud",
        name="keys-missing-values",
        covers=("keys-missing",),
        inject=_serve_changed(lambda data: _meter(data, SINGLE_SN).pop("values")),
        outage=Outage.PARTIAL,
        unavailable=(f"sensor.iammeter_{SINGLE_SN.lower()}_*",),
    ),
    FaultCase(
        source="cloud",
        name="keys-missing-gmt-time",
        covers=("keys-missing",),
        inject=_serve_changed(lambda data: _meter(data, SINGLE_SN).pop("gmtTime")),
        outage=Outage.PARTIAL,
        unavailable=(_cloud_sensor(SINGLE_SN, "last_upload"),),
    ),
    FaultCase(
        source="cloud",
        name="keys-missing-data",
        covers=("keys-missing",),
        inject=_serve(json.dumps({"successful": True, "message": None}).encode()),
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="cloud",
        name="keys-missing-sn",
        covers=("keys-missing",),
        inject=_serve_changed(lambda data: _meter(data, SINGLE_SN).pop("sn")),
        outage=Outage.SOURCE,
    ),
    FaultCase(
        source="cloud",
        name="extra-keys",
        covers=("extra-keys",),
        inject=_serve_changed(
            lambda data: [entry.update({"name": "x", "extra": [1, {}]}) for entry in data],
            code=0,
            total=5,
        ),
        outage=Outage.NONE,
    ),
    FaultCase(
        source="cloud",
        name="three-phase-turns-one-phase",
        covers=("three-to-one-phase",),
        inject=_serve_changed(_phases_b_c_gone),
        outage=Outage.PARTIAL,
        unavailable=(
            f"sensor.iammeter_{THREE_SN.lower()}_*_phase_2",
            f"sensor.iammeter_{THREE_SN.lower()}_*_phase_3",
            *THREE_TOTALS,
        ),
    ),
    FaultCase(
        source="cloud",
        name="three-phase-answers-one-row-once",
        covers=("three-to-one-phase",),
        # One answer with a single row: phase A's counters are lower than the totals; the counter
        # guard holds them back (they never reach the state).
        inject=lambda run: _inject_once_changed(run, _single_row),
        outage=Outage.PARTIAL,
        unavailable=(f"sensor.iammeter_{THREE_SN.lower()}_*_phase_[123]",),
        polls=1,
        held=2,  # the import and export totals
    ),
    FaultCase(
        source="cloud",
        name="meter-disappears",
        covers=("meter-disappears",),
        inject=_account_meters(_drop_single),
        outage=Outage.PARTIAL,
        unavailable=(f"sensor.iammeter_{SINGLE_SN.lower()}_*",),
        polls=2,
    ),
    FaultCase(
        source="cloud",
        name="meter-appears",
        covers=("meter-appears",),
        inject=_account_meters(_add_new),
        outage=Outage.NONE,
        appears=(f"sensor.iammeter_{NEW_SN.lower()}_*",),
    ),
    FaultCase(
        source="cloud",
        name="token-expires",
        covers=("token-expires",),
        inject=_expire_tokens,
        outage=Outage.NONE,
        check=_logins(1),
    ),
    FaultCase(
        source="cloud",
        name="rate-limit-during-polling",
        covers=("rate-limit-polling",),
        # Our call comes a moment after the other client's and gets "nothing"; the next one, 5
        # minutes later, is answered: one poll is lost, the reading stands.
        inject=_other_client_reads_first,
        outage=Outage.NONE,
    ),
    FaultCase(
        source="cloud",
        name="rate-limit-during-login",
        covers=("rate-limit-login", "token-expires"),
        inject=_other_client_logs_in_5_times,
        outage=Outage.SOURCE,
        # nothing said how long: the longest login window, a day
        recover_within=timedelta(days=1, minutes=10),
    ),
    FaultCase(
        source="cloud",
        name="login-answers-nothing",
        covers=("rate-limit-login", "empty-body"),
        inject=_login_answers_nothing,
        outage=Outage.SOURCE,
        recover_within=timedelta(days=1, minutes=10),
        check=_logins(2),
    ),
    *STRING_CLOUD_CASES,
)


async def _inject_once(run: Run, *, count: int = 1, **fault: Any) -> None:
    run.cloud_fake.inject_fault(count, endpoint="metersdata", **fault)


async def _inject_once_changed(run: Run, change: Callable[[list[dict[str, Any]]], None]) -> None:
    data = copy.deepcopy(run.coordinator.client.last_meters_payload)
    change(data)
    await _inject_once(run, body=_answer(data))


async def _restore_cloud(run: Run) -> None:
    cloud = run.cloud_fake
    cloud._faults.clear()
    cloud._release.set()
    cloud._release = asyncio.Event()
    if run.stopped:
        await cloud.start(run.port)
        run.stopped = False
    account = cloud.account(VENDOR_EXAMPLE_LOGIN[0])
    account.meters[:] = vendor_example_account().meters


# --- transport (issue 13): size, time, parsing, redirects, vendor text, the stored reading -------

_OVERSIZED_DEVICE_BODY = json.dumps({"active_power_w": 1, "pad": "x" * 70_000}).encode()
_REDIRECT_ELSEWHERE = "http://127.0.0.1:9/api/v1/data?token=stolen"
_HUGE_MESSAGE = json.dumps(
    {"data": None, "successful": False, "message": "forged\nERROR line\r" + "m" * 1_500_000}
).encode()


# What a poll may allocate at most while a body is capped (64 KiB or 2 MiB): an answer read
# whole, inflated or endless, takes tens or hundreds of MiB.
MAX_MEMORY = 16 * hostile.MIB


def _traced(inject: Step) -> Step:
    """``inject``, then trace memory until ``_memory_bounded`` checks the peak."""

    async def traced(run: Run) -> None:
        await inject(run)
        tracemalloc.start()

    return traced


def _memory_bounded(run: Run) -> list[str]:
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return [f"{peak / hostile.MIB:.1f} MiB allocated at the peak"] if peak > MAX_MEMORY else []


def _respond(responder: hostile.Responder) -> Step:
    return _attr("respond", responder)


def _respond_bomb(inflated: int) -> Step:
    async def inject(run: Run) -> None:
        # built off the loop (the first time, some 0.5 s for 256 MiB): not the client's stall
        bomb = await asyncio.to_thread(hostile.gzip_bomb, inflated)
        run.fake.respond = hostile.compressed(bomb)

    return _traced(inject)


async def _serve_bomb(run: Run) -> None:
    bomb = await asyncio.to_thread(hostile.gzip_bomb)
    await _serve(b"", respond=hostile.compressed(bomb))(run)
    tracemalloc.start()


async def _redirect_to_meterdata(run: Run) -> None:
    """A redirect to another endpoint of the cloud, token in the query: never followed."""
    location = f"{run.cloud_fake.url}/api/v1/site/meterdata/{SINGLE_SN}?token=stolen"
    await _serve(b"", status=302, headers={"Location": location})(run)


def _no_redirect_followed(run: Run) -> list[str]:
    followed = [call for call in run.cloud_fake.calls if call.endpoint == "meterdata"]
    return [f"{len(followed)} redirects followed"] if followed else []


def _extra_huge_fields(data: list[dict[str, Any]]) -> None:
    for entry in data:
        entry |= {"huge": 10**30, "nested": {"a": [[{"b": 1}]] * 50}, "note": "\ud800"}


def _only_known_fields_kept(run: Run) -> list[str]:
    kept = run.coordinator.client.last_meters_payload or []
    extra = {key for entry in kept for key in entry} - {"sn", "values", "gmtTime"}
    return [f"the stored reading holds {sorted(extra)}"] if extra else []


def _log_lines_short(run: Run) -> list[str]:
    texts = [record.getMessage() for record in run.logs.records]
    return [
        f"a log line of {len(text)} characters or several lines: {text[:80]!r}"
        for text in texts
        if len(text) > 1000 or "\n" in text
    ]


def _transport(
    source: Literal["local", "cloud"],
    name: str,
    inject: Step,
    *,
    covers: str | None = None,
    outage: Outage = Outage.SOURCE,
    check: Check | None = None,
) -> FaultCase:
    """A transport case: by default the source fails as a whole while it lasts."""
    return FaultCase(
        source=source,
        name=name,
        covers=(covers or name,),
        inject=inject,
        outage=outage,
        check=check,
    )


LOCAL_CASES += (
    # 16 KB on the wire: inflated up to the cap only; 260 KB: refused by its length
    _transport("local", "gzip-bomb", _respond_bomb(16 * hostile.MIB), check=_memory_bounded),
    _transport(
        "local",
        "gzip-bomb-256-mib",
        _respond_bomb(256 * hostile.MIB),
        covers="gzip-bomb",
        check=_memory_bounded,
    ),
    _transport(
        "local", "endless-stream", _traced(_respond(hostile.endless())), check=_memory_bounded
    ),
    _transport("local", "slow-drip", _respond(hostile.slow_drip(1.0))),
    _transport("local", "oversized-body", _attr("body", _OVERSIZED_DEVICE_BODY)),
    _transport("local", "deep-nesting", _attr("body", hostile.deeply_nested(20_000))),
    _transport("local", "invalid-utf-8", _attr("body", b'{"wifi_ssid": "\xff\xfe"}')),
    _transport(
        "local",
        "redirect-elsewhere",
        _respond(hostile.redirect(_REDIRECT_ELSEWHERE)),
        covers="redirect",
    ),
)

CLOUD_CASES += (
    _transport("cloud", "gzip-bomb", _serve_bomb, check=_memory_bounded),
    _transport(
        "cloud",
        "endless-stream",
        _traced(_serve(b"", respond=hostile.endless())),
        check=_memory_bounded,
    ),
    _transport("cloud", "slow-drip", _serve(b"", respond=hostile.slow_drip(1.0))),
    _transport(
        "cloud",
        "oversized-body",
        _serve_changed(lambda data: None, pad="x" * (3 * hostile.MIB)),
    ),
    _transport("cloud", "deep-nesting", _serve(hostile.deeply_nested())),
    _transport(
        "cloud",
        "invalid-utf-8",
        _serve(b'{"data": [], "successful": true, "message": "\xff"}'),
    ),
    _transport(
        "cloud",
        "redirect-with-token-elsewhere",
        _serve(b"", status=302, headers={"Location": _REDIRECT_ELSEWHERE}),
        covers="redirect",
    ),
    _transport(
        "cloud",
        "redirect-to-another-endpoint",
        _redirect_to_meterdata,
        covers="redirect",
        check=_no_redirect_followed,
    ),
    _transport(
        "cloud",
        "huge-multi-line-vendor-message",
        _serve(_HUGE_MESSAGE),
        covers="vendor-message",
        check=_log_lines_short,
    ),
    _transport(
        "cloud",
        "extra-huge-fields",
        _serve_changed(_extra_huge_fields, extra=10**30),
        outage=Outage.NONE,
        check=_only_known_fields_kept,
    ),
)

# --- flows, discovery and actions (issue 13): attacks that must change nothing -------------------


@dataclass
class _Attack:
    """An attack through a flow or an action: ``inject`` makes it, ``check`` says what it got.

    ``attack`` returns the problems it saw at once (the flow's answer, what was sent).
    """

    attack: Callable[[Run], Awaitable[list[str]]]
    found: list[str] = field(default_factory=list)

    async def inject(self, run: Run) -> None:
        self.found = await self.attack(run)

    def check(self, run: Run) -> list[str]:
        return self.found


SPOOF_IMPORT, SPOOF_POWER = 1.5, 4321


async def _spoof_other_serial(run: Run) -> FakeHomeWizard:
    fake = FakeHomeWizard("HWE-P1")
    fake.device["serial"] = OTHER_SERIAL
    fake.data["total_power_import_kwh"] = OTHER_IMPORT
    return fake


async def _spoof_lower_counter(run: Run) -> FakeHomeWizard:
    fake = FakeHomeWizard("HWE-P1")
    fake.data["total_power_import_kwh"] = SPOOF_IMPORT
    fake.data["active_power_w"] = SPOOF_POWER
    return fake


async def _spoof_not_a_measurement(run: Run) -> FakeHomeWizard:
    fake = FakeHomeWizard("HWE-P1")
    fake.data = "ok"  # type: ignore[assignment]
    return fake


async def _spoof_other_product(run: Run) -> FakeHomeWizard:
    fake = FakeHomeWizard("HWE-SKT")
    fake.device["serial"] = run.entry.unique_id
    fake.data["active_power_w"] = SPOOF_POWER
    return fake


def _announced_by(
    spoofer: Callable[[Run], Awaitable[FakeHomeWizard]], *, answers: bool
) -> Callable[[Run], Awaitable[list[str]]]:
    """A zeroconf announcement of the entry's serial by ``spoofer`` (``answers``: it listens)."""

    async def attack(run: Run) -> list[str]:
        fake = await spoofer(run)
        port = await fake.start()
        if answers:
            run.others.append(fake)  # stopped by the restore
        else:
            await fake.stop()
        host = run.entry.data[CONF_HOST]
        result = await run.hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": SOURCE_ZEROCONF},
            data=ZeroconfServiceInfo(
                ip_address=ip_address("127.0.0.1"),
                ip_addresses=[ip_address("127.0.0.1")],
                port=port,
                hostname="p1meter.local.",
                type="_hwenergy._tcp.local.",
                name="p1meter._hwenergy._tcp.local.",
                properties={"serial": str(run.entry.unique_id), "product_type": "HWE-P1"},
            ),
        )
        await run.hass.async_block_till_done()
        problems = []
        if result.get("reason") != "unverified_address":
            problems.append(f"the announcement ended with {result.get('reason')!r}")
        if run.entry.data[CONF_HOST] != host:
            problems.append(f"the entry moved to the announcer ({run.entry.data[CONF_HOST]})")
        return problems

    return attack


def _spoof_never_lands(run: Run) -> list[str]:
    spoofed = {str(SPOOF_IMPORT), str(SPOOF_POWER), str(OTHER_IMPORT)}
    landed = [(e, s) for e, s in run.history if s in spoofed]
    return [f"the announcer's readings reached the states: {landed}"] if landed else []


def _spoof_case(
    name: str, spoofer: Callable[[Run], Awaitable[FakeHomeWizard]], *, answers: bool = True
) -> FaultCase:
    attack = _Attack(_announced_by(spoofer, answers=answers))
    return FaultCase(
        source="local",
        name=f"zeroconf-spoof-{name}",
        covers=("zeroconf-spoof",),
        inject=attack.inject,
        outage=Outage.NONE,
        polls=1,
        check=lambda run: [*attack.check(run), *_spoof_never_lands(run)],
    )


DISCOVERY_CASES: tuple[FaultCase, ...] = (
    _spoof_case("wrong-serial", _spoof_other_serial),
    _spoof_case("right-serial-no-answer", _spoof_lower_counter, answers=False),
    _spoof_case("right-serial-lower-counter", _spoof_lower_counter),
    _spoof_case("right-serial-not-a-measurement", _spoof_not_a_measurement),
    _spoof_case("right-serial-other-product", _spoof_other_product),
)
LOCAL_CASES = (*LOCAL_CASES, *DISCOVERY_CASES)


def _logins(run: Run) -> int:
    return sum(call.endpoint == "login" for call in run.cloud_fake.calls)


async def _confirmation_asked(run: Run, result: Any, logins: int) -> list[str]:
    """The flow stopped at the http warning and sent nothing; the flow is closed after."""
    problems = []
    if result.get("step_id") != "insecure_server":
        problems.append(f"no confirmation asked: {result.get('type')} {result.get('step_id')}")
    if (sent := _logins(run) - logins) != 0:
        problems.append(f"{sent} sign-ins sent to the http server before a confirmation")
    if len(run.hass.config_entries.async_entries(DOMAIN)) != 1:
        problems.append("an entry was created without a confirmation")
    if result.get("type") == "form":
        run.hass.config_entries.flow.async_abort(result["flow_id"])
    return problems


async def _http_sign_in(run: Run) -> list[str]:
    flow = run.hass.config_entries.flow
    logins = _logins(run)
    result = await flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await flow.async_configure(result["flow_id"], {"next_step_id": "cloud"})
    username, password = DEMO_LOGIN
    result = await flow.async_configure(
        result["flow_id"],
        {"username": username, "password": password, "server": run.cloud_fake.url},
    )
    return await _confirmation_asked(run, result, logins)


async def _http_reconfigure(run: Run) -> list[str]:
    logins = _logins(run)
    data = dict(run.entry.data)
    result = await run.entry.start_reconfigure_flow(run.hass)
    username, password = VENDOR_EXAMPLE_LOGIN
    server = run.cloud_fake.url.replace("127.0.0.1", "localhost")  # another http address
    result = await run.hass.config_entries.flow.async_configure(
        result["flow_id"], {"username": username, "password": password, "server": server}
    )
    problems = await _confirmation_asked(run, result, logins)
    if dict(run.entry.data) != data:
        problems.append("the entry changed without a confirmation")
    return problems


def _action(
    service: str, dates: dict[str, str], *, admin: bool = True
) -> Callable[[Run], Awaitable[list[str]]]:
    """An action call that must be refused before any cloud call or budget is spent."""

    async def attack(run: Run) -> list[str]:
        device = meter_device(run.hass, SINGLE_SN)
        assert device is not None
        context = Context()  # no user: Home Assistant itself (an automation)
        if not admin:
            auth = run.hass.auth
            await auth.async_create_user("Owner")  # the first user owns Home Assistant
            viewer = await auth.async_create_user("Viewer", group_ids=[GROUP_ID_USER])
            context = Context(user_id=viewer.id)
        ledger = run.coordinator.budget.ledger
        budget, calls = ledger.to_dict(), len(run.cloud_fake.calls)
        try:
            await run.hass.services.async_call(
                DOMAIN,
                service,
                {"device_id": device.id, **dates},
                blocking=True,
                return_response=True,
                context=context,
            )
        except Unauthorized:
            problems = [] if not admin else ["an administrator was refused"]
        except ServiceValidationError as err:
            refused_for_the_dates = admin and err.translation_key == "date_out_of_range"
            problems = [] if refused_for_the_dates else [repr(err)]
        else:
            problems = [f"{service} {dates} was answered"]
        if len(run.cloud_fake.calls) != calls or ledger.to_dict() != budget:
            problems.append("the refused call reached the cloud or its budget")
        return problems

    return attack


def _account_case(
    name: str, covers: str, attack: Callable[[Run], Awaitable[list[str]]]
) -> FaultCase:
    found = _Attack(attack)
    return FaultCase(
        source="cloud",
        name=name,
        covers=(covers,),
        inject=found.inject,
        outage=Outage.NONE,
        polls=1,
        check=found.check,
    )


ACCOUNT_CASES: tuple[FaultCase, ...] = (
    _account_case("http-server-without-confirmation", "http-server", _http_sign_in),
    _account_case("http-reconfigure-without-confirmation", "http-server", _http_reconfigure),
    _account_case(
        "action-year-1", "action-dates", _action("power_analysis", {"start_date": "0001-01-01"})
    ),
    _account_case(
        "action-year-9999",
        "action-dates",
        _action("offline_analysis", {"start_date": "2024-01-01", "end_date": "9999-12-31"}),
    ),
    _account_case(
        "action-history-year-9999",
        "action-dates",
        _action("meter_history", {"start_date": "9999-12-31"}),
    ),
    _account_case(
        "action-before-2015",
        "action-dates",
        _action("power_analysis", {"start_date": "2014-12-31", "end_date": "2015-01-01"}),
    ),
    _account_case(
        "action-non-admin-power-analysis",
        "action-non-admin",
        _action("power_analysis", {}, admin=False),
    ),
    _account_case(
        "action-non-admin-meter-history",
        "action-non-admin",
        _action("meter_history", {"start_date": "2024-02-21"}, admin=False),
    ),
)
CLOUD_CASES = (*CLOUD_CASES, *ACCOUNT_CASES)

CASES: tuple[FaultCase, ...] = (*LOCAL_CASES, *CLOUD_CASES)

# Every fault kind the issue names, and the sources it applies to.
REQUIRED: dict[str, tuple[str, ...]] = dict.fromkeys(
    (
        "connection-refused",
        "no-answer",
        "http-500",
        "http-502",
        "http-503",
        "http-404",
        "http-403",
        "http-401",
        "empty-body",
        "invalid-json",
        "json-list",
        "json-string",
        "json-number",
        "json-null",
        "field-string",
        "field-nan",
        "field-infinity",
        "field-negative-kwh",
        "field-1e308",
        "keys-missing",
        "extra-keys",
        "three-to-one-phase",
    ),
    ("local", "cloud"),
) | {
    "external-appears": ("local",),
    "external-disappears": ("local",),
    "meter-appears": ("cloud",),
    "meter-disappears": ("cloud",),
    "token-expires": ("cloud",),
    "rate-limit-login": ("cloud",),
    "rate-limit-polling": ("cloud",),
    # a cloud account is reached by name over TLS; a local address can change hands (DHCP)
    "other-device": ("local",),
    # text a vendor sends (issue 13, item 5); external meters bounded and scoped (items 10, 14)
    "text-surrogate": ("local", "cloud"),
    "text-control": ("local", "cloud"),
    "text-oversized": ("local", "cloud"),
    "external-flood": ("local",),
    "external-id-length": ("local",),
    "external-scope": ("local",),
    # issue 13: discovery spoofing, plain http servers, action dates and rights
    "zeroconf-spoof": ("local",),
    "http-server": ("cloud",),
    "action-dates": ("cloud",),
    "action-non-admin": ("cloud",),
}
# transport (issue 13)
REQUIRED |= dict.fromkeys(
    (
        "gzip-bomb",
        "endless-stream",
        "slow-drip",
        "oversized-body",
        "deep-nesting",
        "invalid-utf-8",
        "redirect",
    ),
    ("local", "cloud"),
) | {"vendor-message": ("cloud",), "extra-huge-fields": ("cloud",)}


# --- running a case -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a case found."""

    problems: list[str] = field(default_factory=list)
    recovered: bool = False
    bad_lines: int = 0
    recovery_lines: int = 0
    checks: int = 0  # entity states checked


def _entities(run: Run) -> list[str]:
    registry = er.async_get(run.hass)
    return [e.entity_id for e in er.async_entries_for_config_entry(registry, run.entry.entry_id)]


def _available(run: Run, entity_id: str) -> bool:
    state = run.hass.states.get(entity_id)
    return state is not None and state.state != STATE_UNAVAILABLE


def _matches(entity_id: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(entity_id, pattern) for pattern in patterns)


async def _run_loop(until: Callable[[], bool], rounds: int = 2000) -> None:
    for _ in range(rounds):
        if until():
            return
        await asyncio.sleep(0)


async def _tick(run: Run, delta: timedelta, *, hang: Callable[[], bool] | None = None) -> None:
    """Let ``delta`` pass and run what falls due; a request that hangs runs into its timeout."""
    run.freezer.tick(delta)
    async_fire_time_changed(run.hass)
    if hang is not None:
        await _run_loop(hang)
        if hang():
            run.freezer.tick(PAST_TIMEOUT)
            async_fire_time_changed(run.hass)
    await run.hass.async_block_till_done(wait_background_tasks=True)


async def _poll(run: Run) -> None:
    if run.iammeter is not None:
        await _tick(run, IAMMETER_LOCAL_SCAN_INTERVAL)
    elif run.homewizard is not None:
        fake = run.homewizard
        # a hostile answer may never end: like a hang, it runs into the client's timeout
        hangs = fake.hang or fake.respond is not None
        await _tick(run, LOCAL_POLL, hang=(lambda: fake.in_flight > 0) if hangs else None)
    else:
        cloud = run.cloud_fake
        hanging = any(fault.hang_s or fault.respond for fault in cloud._faults)
        faults = len(cloud._faults)
        await _tick(
            run, CLOUD_POLL, hang=(lambda: len(cloud._faults) < faults) if hanging else None
        )


def _check_during(case: FaultCase, run: Run, baseline: list[str], *, fresh: bool) -> list[str]:
    """The entities while the fault lasts; ``fresh``: the cloud's last reading is < 15 min old."""
    problems: list[str] = []
    for entity_id in baseline:
        available = _available(run, entity_id)
        if case.outage is Outage.SOURCE:
            expected = fresh
        elif case.outage is Outage.PARTIAL:
            expected = not _matches(entity_id, case.unavailable)
        else:
            expected = True
        if available != expected:
            state = run.hass.states.get(entity_id)
            problems.append(
                f"{entity_id} is {state.state if state else None!r} during the fault "
                f"(expected {'available' if expected else 'unavailable'})"
            )
    if case.outage is Outage.PARTIAL and not any(_matches(e, case.unavailable) for e in baseline):
        problems.append(f"no entity matches {case.unavailable}: the case tests nothing")
    problems.extend(
        f"no available entity {pattern} appeared"
        for pattern in case.appears
        if not any(fnmatch(e, pattern) and _available(run, e) for e in _entities(run))
    )
    return problems


def _last_good_call(run: Run) -> datetime:
    coordinator: CloudCoordinator = run.coordinator
    assert coordinator.fetched_at is not None
    return coordinator.fetched_at


async def run_case(case: FaultCase, run: Run) -> Outcome:
    """Inject the fault, watch the entities and the log, take it away, watch the recovery."""
    outcome = Outcome()
    problems = outcome.problems
    hass = run.hass

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        run.history.append((event.data["entity_id"], new.state if new else "removed"))

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    baseline = [entity_id for entity_id in _entities(run) if _available(run, entity_id)]
    before_fault = {entity_id: hass.states.get(entity_id).state for entity_id in baseline}
    if not baseline:
        problems.append("no entity is available before the fault")
    last_good = _last_good_call(run) if run.cloud is not None else None

    # --- the fault ---
    run.logs.mark()
    await case.inject(run)
    if run.cloud is None or case.outage is not Outage.SOURCE:
        for _ in range(case.polls):
            await _poll(run)
            problems.extend(_check_during(case, run, baseline, fresh=False))
            outcome.checks += len(baseline)
    else:
        # Cloud: the reading stands while it is younger than 15 minutes, then it is unavailable.
        assert last_good is not None
        while dt_util.utcnow() - last_good < CLOUD_STALE_AFTER:
            await _poll(run)
            if dt_util.utcnow() - last_good < CLOUD_STALE_AFTER:
                problems.extend(_check_during(case, run, baseline, fresh=True))
                outcome.checks += len(baseline)
                if run.logs.lines():
                    problems.append(
                        f"logged while the reading is fresh: {describe(run.logs.lines())}"
                    )
        await _poll(run)
        problems.extend(_check_during(case, run, baseline, fresh=False))
        outcome.checks += len(baseline)
    bad = run.logs.lines()
    outcome.bad_lines = len(bad)
    expected_lines = case.lines
    if expected_lines is None:
        expected_lines = (1 if case.outage is Outage.SOURCE else 0) + case.held
    if len(bad) != expected_lines:
        problems.append(f"{len(bad)} log lines when it went bad: {describe(bad)}")

    # --- the recovery ---
    run.logs.mark()
    if run.iammeter is not None:
        await _restore_iammeter(run)
    elif run.cloud is None:
        await _restore_local(run)
    else:
        await _restore_cloud(run)
    if case.restore is not None:
        await case.restore(run)
    deadline = dt_util.utcnow() + (
        case.recover_within
        or (LOCAL_POLL if run.cloud is None else CLOUD_POLL) - timedelta(seconds=1)
    )
    missing: list[str] = baseline
    while True:
        await _poll(run)
        missing = [entity_id for entity_id in baseline if not _available(run, entity_id)]
        outcome.checks += len(baseline)
        if (not missing and run.coordinator.last_update_success) or dt_util.utcnow() > deadline:
            break
    not_back = case.back(run) if case.back is not None else []
    outcome.recovered = not missing and run.coordinator.last_update_success and not not_back
    if missing or not run.coordinator.last_update_success:
        problems.append(f"not recovered: still unavailable {missing[:10]}")
    problems.extend(f"not recovered: {problem}" for problem in not_back)
    # A few more polls: it stays recovered, and says so once.
    for _ in range(2):
        await _poll(run)
    if outcome.recovered and (lost := [e for e in baseline if not _available(run, e)]):
        problems.append(f"unavailable again after the recovery: {lost[:10]}")
    good = run.logs.lines()
    outcome.recovery_lines = len(good)
    if len(good) != (expected_lines if case.recovery_lines is None else case.recovery_lines):
        problems.append(f"{len(good)} log lines when it recovered: {describe(good)}")
    if (run.homewizard or run.iammeter) is not None and outcome.recovered:
        # the device answers as before the fault: so do the entities
        differ = [
            f"{entity_id}: {before!r} -> {state.state if state else None!r}"
            for entity_id, before in before_fault.items()
            if (state := hass.states.get(entity_id)) is None or state.state != before
        ]
        if differ:
            problems.append(f"not back to the device's values: {differ[:10]}")
    if case.check is not None:
        problems.extend(case.check(run))
    unsub()
    return outcome


# --- counters (issue 13): a true counter, and what the source serves instead --------------------
#
# Each counter case scripts the polls of one import counter: the meter's true value and what the
# source answers (the value, a glitch, nothing, an error) or a restart of Home Assistant. The
# figure is the phantom energy: what the recorder's sum books from the published states beyond
# the true consumption. It must be 0.


ERROR: Final = "error"  # the source fails (local: HTTP 500; cloud: HTTP 500, the reading kept)
MISSING: Final = "missing"  # the answer lacks the counter
RESTART: Final = "restart"  # Home Assistant restarts (the entry is reloaded) into the next poll
SPIKE_KWH: Final = 1_000_000.0


@dataclass(frozen=True)
class CounterPoll:
    """One poll: the meter's true counter (kWh), what the source serves, the time before it."""

    true: float
    served: float | str
    wait: timedelta | None = None  # default: the source's poll interval


@dataclass(frozen=True, kw_only=True)
class CounterCase:
    """A scripted counter; ``replaced``: the meter is replaced and the new one must show."""

    source: Literal["local", "cloud"]
    name: str
    polls: Callable[[float], list[CounterPoll]]  # from the counter's value before the case
    replaced: bool = False

    @property
    def id(self) -> str:
        """The case id (pytest id and record name)."""
        return f"{self.source}-counter-{self.name}"


def _ok(true: float, wait: timedelta | None = None) -> CounterPoll:
    return CounterPoll(true, true, wait)


def _script(*polls: Callable[[float], list[CounterPoll]]) -> Callable[[float], list[CounterPoll]]:
    """Script parts one after the other, each from the true counter the one before left."""

    def script(start: float) -> list[CounterPoll]:
        made: list[CounterPoll] = []
        for part in polls:
            made += part(made[-1].true if made else start)
        return made

    return script


def _rising(count: int, kwh: float = 0.001) -> Callable[[float], list[CounterPoll]]:
    """``count`` good polls, the counter rising by ``kwh`` each."""
    return lambda start: [_ok(round(start + (n + 1) * kwh, 3)) for n in range(count)]


def _served(*served: float | str, relative: bool = False) -> Callable[[float], list[CounterPoll]]:
    """Polls that serve ``served`` (added to the true value if ``relative``) while it stands."""
    return lambda start: [
        CounterPoll(start, start + s if relative and isinstance(s, float) else s) for s in served
    ]


def _ramp(count: int, kwh: float) -> Callable[[float], list[CounterPoll]]:
    """A spoof that climbs ``kwh`` per poll from the true value, which stands."""
    return lambda start: [CounterPoll(start, round(start + (n + 1) * kwh, 3)) for n in range(count)]


def _new_meter(count: int) -> Callable[[float], list[CounterPoll]]:
    """The meter is replaced: a new one from 0, rising 0.001 kWh per poll."""
    return lambda _start: [_ok(round((n + 1) * 0.001, 3)) for n in range(count)]


def _outage_catch_up(hours: float, kwh: float) -> Callable[[float], list[CounterPoll]]:
    """The source fails for ``hours`` while ``kwh`` are used; then it answers again."""
    return lambda start: [
        CounterPoll(start, ERROR),
        CounterPoll(round(start + kwh, 3), round(start + kwh, 3), timedelta(hours=hours)),
    ]


LOCAL_GLITCH_OUTAGE = 14  # polls of 5 s: 70 s
COUNTER_CASES: tuple[CounterCase, ...] = (
    CounterCase(
        source="local",
        name="spike-up-once",
        polls=_script(_served(SPIKE_KWH, relative=True), _rising(2)),
    ),
    CounterCase(
        source="local",
        name="spike-up-for-a-minute",
        polls=_script(_served(*[SPIKE_KWH] * 13, relative=True), _rising(2)),
    ),
    CounterCase(
        source="local",
        name="spike-up-1-kwh-for-a-minute",
        polls=_script(_served(*[1.0] * 13, relative=True), _rising(2)),
    ),
    CounterCase(source="local", name="spike-down-to-0", polls=_script(_served(0.0), _rising(2))),
    CounterCase(
        source="local",
        name="glitch-outage-glitch",
        polls=_script(
            _served(0.0, *[ERROR] * LOCAL_GLITCH_OUTAGE, 0.0, 0.0),
            _rising(2),
        ),
    ),
    CounterCase(
        source="local",
        name="glitch-missing-glitch",
        polls=_script(_served(0.0, *[MISSING] * LOCAL_GLITCH_OUTAGE, 0.0), _rising(2)),
    ),
    CounterCase(
        source="local",
        name="restart-while-unavailable-then-glitch",
        polls=_script(_served(ERROR, RESTART, 0.0, SPIKE_KWH), _rising(2)),
    ),
    CounterCase(
        # the counter stands (the other tariff, export at night) and is read all the while:
        # 50 kWh were possible since the value was first read, not since it was last read
        source="local",
        name="spike-up-on-a-counter-that-stood-10-minutes",
        polls=_script(_served(*[0.0] * 120, 50.0, relative=True), _rising(2)),
    ),
    CounterCase(
        source="local",
        name="slow-ramp-spoof",
        polls=_script(_ramp(20, 2.0), _rising(2)),  # 2 kWh per 5 s: 1.44 MW
    ),
    CounterCase(
        source="local",
        name="catch-up-after-an-hour-outage",
        polls=_script(_outage_catch_up(1, 5.0), _rising(2)),
    ),
    CounterCase(
        source="local",
        name="meter-replaced",
        polls=_script(_rising(1), _new_meter(14)),
        replaced=True,
    ),
    CounterCase(
        source="cloud",
        name="spike-up-once",
        polls=_script(_served(SPIKE_KWH, relative=True), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="spike-up-1000-kwh-for-20-minutes",
        polls=_script(_served(*[1000.0] * 4, relative=True), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="spike-up-on-a-counter-that-stood-2-hours",
        polls=_script(_served(*[0.0] * 24, 500.0, relative=True), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="two-low-answers",
        polls=_script(_served(0.095, 0.095), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="low-error-low",
        polls=_script(_served(0.095, ERROR, 0.095, 0.095), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="low-missing-low",
        polls=_script(_served(0.095, MISSING, 0.095, 0.095), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="restart-then-glitch",
        polls=_script(_served(RESTART, 0.0, SPIKE_KWH), _rising(2, 0.1)),
    ),
    CounterCase(
        source="cloud",
        name="meter-replaced",
        polls=_script(_rising(1, 0.1), _new_meter(3)),
        replaced=True,
    ),
)
LOCAL_COUNTER_CASES = tuple(case for case in COUNTER_CASES if case.source == "local")
CLOUD_COUNTER_CASES = tuple(case for case in COUNTER_CASES if case.source == "cloud")
COUNTER_ENTITY: Final = {"local": IMPORT, "cloud": _cloud_sensor(SINGLE_SN, "energy_import")}


def _true_counter(run: Run) -> float:
    """The import counter the source serves before the case."""
    if run.cloud is None:
        return float(run.fake.data["total_power_import_kwh"])
    payload: list[dict[str, Any]] = run.coordinator.client.last_meters_payload
    return float(_meter(payload, SINGLE_SN)["values"][3])


async def _serve_counter(run: Run, served: float | str, payload: object) -> None:
    """Make the source answer ``served`` at the next poll."""
    if run.cloud is None:
        fake = run.fake
        fake.status = 500 if served == ERROR else None
        if served == MISSING:
            fake.data.pop("total_power_import_kwh", None)
        elif isinstance(served, float):
            fake.data["total_power_import_kwh"] = served
        return
    if served == ERROR:
        run.cloud_fake.inject_fault(1, status=500, endpoint="metersdata")
        return
    data = copy.deepcopy(payload)
    assert isinstance(data, list)
    _meter(data, SINGLE_SN)["values"][3] = None if served == MISSING else served
    run.cloud_fake.inject_fault(1, endpoint="metersdata", body=_answer(data))


async def _restart(run: Run) -> None:
    """Home Assistant restarts: the entities store their data, the entry starts again."""
    assert await run.hass.config_entries.async_reload(run.entry.entry_id)
    await run.hass.async_block_till_done(wait_background_tasks=True)


@dataclass
class CounterOutcome:
    """What a counter case found."""

    phantom_kwh: float = 0.0
    problems: list[str] = field(default_factory=list)


async def run_counter_case(case: CounterCase, run: Run) -> CounterOutcome:
    """Serve the script, poll, and compare what was booked with what the meter measured."""
    outcome = CounterOutcome()
    entity_id = COUNTER_ENTITY[case.source]
    start = _true_counter(run)
    payload = run.coordinator.client.last_meters_payload if run.cloud is not None else None
    interval = LOCAL_POLL if run.cloud is None else CLOUD_POLL
    polls = case.polls(start)
    true_states = [start] + [poll.true for poll in polls]
    for index, poll in enumerate(polls):
        if poll.served == RESTART:
            if run.cloud is None:
                # the device is read at the start (the cloud's stored reading is used instead)
                await _serve_counter(run, polls[index + 1].served, payload)
            await _restart(run)
            continue
        await _serve_counter(run, poll.served, payload)
        await _tick(run, poll.wait or interval)
    if run.homewizard is not None:
        run.fake.status = None
    published = run.counters.published.get(entity_id, [])
    state = run.hass.states.get(entity_id)
    outcome.phantom_kwh = booked(published) - booked(true_states)
    if abs(outcome.phantom_kwh) > 0.001:
        outcome.problems.append(
            f"booked {booked(published):.3f} kWh for {booked(true_states):.3f} used: "
            f"published {published[:8]}"
        )
    if state is None or state.state != str(true_states[-1]):
        outcome.problems.append(
            f"{entity_id} is {state.state if state else None} at the end, the meter "
            f"{true_states[-1]}" + (" (replaced)" if case.replaced else "")
        )
    return outcome


# --- the history backfill (issue 13): glitched 5-minute samples --------------------------------

HISTORY_START: Final = datetime(2024, 5, 5, tzinfo=UTC)
HISTORY_HOURS: Final = 4
# sample index -> what the history holds there instead of the true counter
BACKFILL_GLITCHES: Final[dict[str, dict[int, float]]] = {
    "spike-up": {20: 1_015_234.567},
    "spike-up-twice": {20: 1_015_234.567, 21: 1_015_234.567},
    "spike-down": {20: 0.0},
    "spike-down-twice": {20: 0.0, 21: 0.0},
    "spike-then-dip": {20: 1_015_234.567, 30: 0.0},
    "ramp-spoof": {n: 10.0 + (n - 19) * 50.0 for n in range(20, 30)},  # 600 kW
}


def backfill_phantom(glitches: dict[int, float]) -> float:
    """The energy a backfill of a glitched history books beyond that of the true history."""
    period = timedelta(minutes=5)
    hour = timedelta(hours=1)
    true = [
        Sample(HISTORY_START + n * period, round(10.0 + n * 0.1, 3))
        for n in range(12 * HISTORY_HOURS)
    ]
    glitched = [Sample(s.at, glitches.get(n, s.value)) for n, s in enumerate(true)]
    rows = [
        StatRow(HISTORY_START - hour, 9.9, 100.0),
        StatRow(HISTORY_START + 3 * hour, 14.7, 104.8),
    ]

    def new_guard() -> CounterGuard:
        return CounterGuard("history", rise_bound(None, "kWh"), HISTORY_COUNTER_RESET)

    def total(samples: list[Sample]) -> float:
        plan = plan_backfill(
            rows,
            SampleSeries(samples),
            HISTORY_START,
            HISTORY_START + 3 * hour,
            0.01,
            new_guard=new_guard,
        )
        return plan.rows[-1].sum + sum(difference for _, difference in plan.adjustments)

    return total(glitched) - total(true)


# --- IAMMETER on the local network (issue 21) ----------------------------------------------------
#
# The meter is a WEM3080T with net metering (its entry made so), polled every second; its counters
# stand still, so every kWh booked during a case is phantom.

IAM_SERIAL = "5DB50BF4"
IAM = f"sensor.iammeter_{IAM_SERIAL.lower()}"
IAM_TOTALS = (f"{IAM}_energy_import", f"{IAM}_energy_export")
IAM_OTHER_SERIAL = "0BADC0DE"
# What a case may change on the fake meter, put back by ``_restore_iammeter``.
_IAM_STATE: Final = (
    "serial",
    "net_metering",
    "imported",
    "exported",
    "net_import",
    "net_export",
    "reactive",
    "ssid",
    "model",
    "password",
    "status",
    "body",
    "headers",
    "not_ready_polls",
)


def iammeter_state(fake: FakeIamMeter) -> dict[str, Any]:
    """What ``_restore_iammeter`` puts back: the fake's state before the case."""
    return {name: copy.deepcopy(getattr(fake, name)) for name in _IAM_STATE}


async def _restore_iammeter(run: Run) -> None:
    fake = run.iammeter
    assert fake is not None
    run.iammeter_requests_during = fake.request_count.total()
    for name, value in run.iammeter_state.items():
        setattr(fake, name, copy.deepcopy(value))
    fake.failures = 0
    if run.stopped:
        await fake.start(run.port)
        run.stopped = False


def _iam(**changes: object) -> Step:
    """Set attributes of the fake meter; its request count starts again."""

    async def inject(run: Run) -> None:
        assert run.iammeter is not None
        for name, value in changes.items():
            setattr(run.iammeter, name, value)
        run.iammeter.request_count.clear()

    return inject


def _iam_body(payload: object, status: int = 200) -> Step:
    return _iam(status=status, body=json.dumps(payload).encode())


def _iam_rows(change: Callable[[list[list[object]]], None]) -> Step:
    """Serve the meter's own answer with its ``Datas`` rows changed."""

    async def inject(run: Run) -> None:
        assert run.iammeter is not None
        payload = run.iammeter.payload() | run.iammeter.monitor_extras()
        change(payload["Datas"])
        await _iam_body(payload)(run)

    return inject


def _phase_1_hostile(rows: list[list[object]]) -> None:
    rows[0] = ["230.1", None, 1e308, -5.0, math.inf, 50.01, 2.0]


async def _refuse_iammeter(run: Run) -> None:
    assert run.iammeter is not None
    await run.iammeter.stop()
    run.stopped = True


def _requests(most: int) -> Check:
    """The meter was asked at most ``most`` times while it refused (never hammered)."""

    def check(run: Run) -> list[str]:
        during = run.iammeter_requests_during
        return [] if during <= most else [f"{during} requests while it refused (at most {most})"]

    return check


def _iam_other_never_lands(run: Run) -> list[str]:
    problems = [
        f"the other meter's reading reached {entity_id}"
        for entity_id, state in run.history
        if state in ("99999.0", "50.0", "60.0", "70.0")
    ]
    if meter_device(run.hass, IAM_OTHER_SERIAL) is not None:
        problems.append("the other meter got a device")
    if meter_device(run.hass, "null") is not None:
        problems.append("the not-ready answer got a device")
    return problems


async def _finish_reauth(run: Run) -> None:
    """The user answers the reauth flow that the 401 started, with the meter's credentials."""
    flows = [
        flow
        for flow in run.hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == "reauth"
    ]
    if len(flows) != 1:
        return  # ``_iam_reauth_done`` reports it
    await run.hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {"username": "admin", "password": "s3cret"}
    )
    await run.hass.async_block_till_done()


def _iam_reauth_done(run: Run) -> list[str]:
    problems = _no_reauth_left(run)
    if run.entry.data.get("password") != "s3cret":
        problems.append("the reauth did not store the credentials")
    return problems


def _booked_nothing(run: Run) -> list[str]:
    phantom = sum(booked(states) for states in run.counters.published.values())
    return [f"{phantom} booked by a meter whose counters stand still"] if phantom else []


def _iam_case(name: str, covers: str, inject: Step, outage: Outage, **more: Any) -> FaultCase:
    return FaultCase(
        source="iammeter", name=name, covers=(covers,), inject=inject, outage=outage, **more
    )


_IAM_NOT_READY = {"method": "uploadsn", "mac": None, "SN": "null", "Data": [None] * 5}
_IAM_OVERSIZED = json.dumps({"SN": IAM_SERIAL, "Datas": [[1.0] * 7] * 3, "x": "y" * 20_000})
_IAM_REACTIVE_SPIKE = [[-119.0, 0.0, SPIKE_KWH], [-120.0, 0.0, 260.278], [-118.0, 0.007, 256.485]]
# Longer than a drop takes to be believed as a reset (3 polls over 60 s): the other counters
# are never taken for one.
_IAM_MODE_POLLS = 70

IAMMETER_CASES: tuple[FaultCase, ...] = (
    _iam_case(
        "not-ready-http-400",
        "not-ready",
        _iam(not_ready_polls=FOREVER),
        Outage.SOURCE,
        check=_iam_other_never_lands,
    ),
    _iam_case(
        "not-ready-null-values",
        "not-ready",
        _iam_body({"SN": IAM_SERIAL, "Datas": [[None] * 7] * 3}),
        Outage.SOURCE,
    ),
    _iam_case(
        "not-ready-serial-null-http-200",
        "not-ready",
        _iam_body(_IAM_NOT_READY),
        Outage.SOURCE,
        check=_iam_other_never_lands,
    ),
    _iam_case(
        "http-401-reauth",
        "http-401",
        _iam(password="s3cret"),
        Outage.SOURCE,
        polls=10,
        restore=_finish_reauth,
        # the entry reloads with the new credentials: the flow's "reauth_successful" says it
        recovery_lines=0,
        back=_iam_reauth_done,
        check=_requests(1),
    ),
    _iam_case(
        "http-429-retry-after",
        "http-429-retry-after",
        _iam(status=429, headers={"Retry-After": "20"}),
        Outage.SOURCE,
        polls=10,
        recover_within=timedelta(seconds=21),
        check=_requests(1),
    ),
    _iam_case(
        "http-429-without-retry-after",
        "http-429",
        _iam(status=429),
        Outage.SOURCE,
        polls=30,
        recover_within=timedelta(seconds=61),
        check=_requests(1),
    ),
    _iam_case(
        "nem-row-disappears",
        "nem-row-disappears",
        _iam(net_metering=False),
        Outage.PARTIAL,
        # and what only the net row has: the reference voltage, frequency, power factor
        unavailable=(*IAM_TOTALS, f"{IAM}_voltage", f"{IAM}_frequency", f"{IAM}_power_factor"),
        polls=_IAM_MODE_POLLS,
        check=_booked_nothing,
    ),
    _iam_case(
        "counter-spike-up",
        "counter-spike-up",
        _iam(net_import=SPIKE_KWH),
        Outage.NONE,
        held=1,
        check=_booked_nothing,
    ),
    _iam_case(
        "counter-spike-down",
        "counter-spike-down",
        _iam(imported=[0.0, 847.25, 991.5]),
        Outage.NONE,
        held=1,
        check=_booked_nothing,
    ),
    _iam_case(
        "reactive-counter-spike",
        "counter-spike-up",
        _iam(reactive=_IAM_REACTIVE_SPIKE),
        Outage.NONE,
        held=1,
    ),
    _iam_case(
        "meter-replaced-at-the-address",
        "other-device",
        _iam(serial=IAM_OTHER_SERIAL, net_import=99999.0, imported=[50.0, 60.0, 70.0]),
        Outage.SOURCE,
        check=_iam_other_never_lands,
    ),
    _iam_case(
        "oversized-body", "oversized-body", _iam(body=_IAM_OVERSIZED.encode()), Outage.SOURCE
    ),
    _iam_case(
        "invalid-json",
        "invalid-json",
        _iam(body=b'{"SN": "5DB50BF4", "Datas": [[230.1,'),
        Outage.SOURCE,
    ),
    _iam_case(
        "json-list",
        "malformed-body",
        _iam_body([[230.1, 1.0, 100.0, 1.0, 0.0, 50.0, 1.0]]),
        Outage.SOURCE,
    ),
    _iam_case(
        "five-rows",
        "malformed-body",
        _iam_rows(lambda rows: rows.append(rows[0])),
        Outage.SOURCE,
    ),
    _iam_case("deep-nesting", "hostile-body", _iam(body=hostile.deeply_nested()), Outage.SOURCE),
    _iam_case(
        "hostile-values-phase-1",
        "hostile-body",
        _iam_rows(_phase_1_hostile),
        Outage.PARTIAL,
        unavailable=(
            *(
                f"{IAM}_{quantity}_phase_1"
                for quantity in (
                    "voltage",
                    "current",
                    "power",
                    "energy_import",
                    "energy_export",
                    "power_factor",
                )
            ),
            f"{IAM}_power",  # the sum of the phases lacks one
        ),
    ),
    _iam_case(
        "surrogate-ssid-and-model",
        "text-surrogate",
        _iam(ssid=SURROGATE, model=f"WEM{SURROGATE}3080T"),
        Outage.PARTIAL,
        unavailable=(f"{IAM}_wi_fi_ssid",),
        check=_everything_saves,
    ),
    _iam_case(
        "control-characters-in-ssid",
        "text-control",
        _iam(ssid=FORGED_LINE),
        Outage.PARTIAL,
        unavailable=(f"{IAM}_wi_fi_ssid",),
        check=_log_lines_short,
    ),
    _iam_case("connection-refused", "connection-refused", _refuse_iammeter, Outage.SOURCE),
)
# Made without net metering, the entry sees the net row appear: its counters are others.
IAMMETER_NO_NEM_CASES: tuple[FaultCase, ...] = (
    _iam_case(
        "nem-row-appears",
        "nem-row-appears",
        _iam(net_metering=True),
        Outage.PARTIAL,
        unavailable=IAM_TOTALS,
        polls=_IAM_MODE_POLLS,
        check=_booked_nothing,
    ),
)
CASES = (*CASES, *IAMMETER_CASES, *IAMMETER_NO_NEM_CASES)
IAMMETER_KINDS: Final = (
    "not-ready",
    "http-401",
    "http-429",
    "http-429-retry-after",
    "nem-row-appears",
    "nem-row-disappears",
    "counter-spike-up",
    "counter-spike-down",
    "other-device",
    "oversized-body",
    "invalid-json",
    "malformed-body",
    "hostile-body",
    "text-surrogate",
    "text-control",
    "connection-refused",
)
REQUIRED |= {kind: (*REQUIRED.get(kind, ()), "iammeter") for kind in IAMMETER_KINDS}
