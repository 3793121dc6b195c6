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
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatch
import json
import math
from typing import Any, Literal

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN, CloudCoordinator
from custom_components.meter_hub.const import CLOUD_SCAN_INTERVAL, CLOUD_STALE_AFTER, DOMAIN
from simulator.homewizard import PROFILES, FakeHomeWizard
from simulator.iammeter import (
    VENDOR_EXAMPLE_LOGIN,
    FakeIamMeterCloud,
    FakeMeter,
    Phase,
    vendor_example_account,
)

from .conftest import meter_device
from .fault_records import CounterWatch, LogWatch, describe

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
        return self.entry.runtime_data


type Step = Callable[[Run], Awaitable[None]]
type Check = Callable[[Run], list[str]]


@dataclass(frozen=True, kw_only=True)
class FaultCase:
    """One row of the matrix."""

    source: Literal["local", "cloud"]
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
}


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
    if run.homewizard is not None:
        fake = run.homewizard
        await _tick(run, LOCAL_POLL, hang=(lambda: fake.in_flight > 0) if fake.hang else None)
    else:
        cloud = run.cloud_fake
        hanging = any(fault.hang_s for fault in cloud._faults)
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
    expected_lines = 1 if case.outage is Outage.SOURCE else 0
    if len(bad) != expected_lines:
        problems.append(f"{len(bad)} log lines when it went bad: {describe(bad)}")

    # --- the recovery ---
    run.logs.mark()
    if run.cloud is None:
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
    if len(good) != expected_lines:
        problems.append(f"{len(good)} log lines when it recovered: {describe(good)}")
    if run.homewizard is not None and outcome.recovered:
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
