"""Sensors: one description per canonical key of the normalised reading.

This module knows nothing about vendors, HTTP or JSON: a key a source reports becomes an entity,
also when it first appears after setup.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
import math
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntityDescription,
    SensorExtraStoredData,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS,
    EntityCategory,
    UnitOfApparentPower,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfReactivePower,
    UnitOfTime,
    UnitOfVolume,
    UnitOfVolumeFlowRate,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .api.model import (
    MAX_EXTERNAL_METERS,
    MAX_ID_LENGTH,
    PHASES,
    TARIFFS,
    ExternalMeter,
    Value,
    exact_percent,
    phase_key,
    tariff_key,
)
from .compat import KILO_VOLT_AMPERE_REACTIVE_HOUR, REACTIVE_ENERGY
from .const import LOGGER
from .coordinator import MeterData, MeterHubConfigEntry, MeterHubCoordinator, external_device_id
from .counter_guard import CounterGuard, rise_bound
from .entity import MeterHubEntity, external_device_info, meter_device_info

# Coordinator entities: the coordinator does the fetching, nothing to limit here.
PARALLEL_UPDATES = 0

type NativeValue = StateType | datetime

# The counter guard's reference in the stored sensor data.
GUARD_KEY = "counter_guard"


@dataclass
class CounterStoredData(SensorExtraStoredData):
    """A counter's stored data: the sensor's, and the guard's last published value and time."""

    guard_value: float | None
    guard_at: float | None
    guard_confirmed_at: float | None

    def as_dict(self) -> dict[str, Any]:
        """The sensor's data with the guard's reference."""
        reference = {
            "value": self.guard_value,
            "at": self.guard_at,
            "confirmed_at": self.guard_confirmed_at,
        }
        return {**super().as_dict(), GUARD_KEY: reference}


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _percent(value: Value) -> NativeValue:
    """Power factor 0..1 as percent, every digit kept (display precision rounds, not the state)."""
    return exact_percent(value) if isinstance(value, int | float) else None


def _text(value: Value) -> NativeValue:
    return str(value)


@dataclass(frozen=True, kw_only=True)
class MeterHubSensorEntityDescription(SensorEntityDescription):
    """A sensor of one canonical key; ``convert`` maps the reading's value to the state."""

    convert: Callable[[Value], NativeValue] | None = None


def _electrical(
    quantity: str,
    translation_key: str,
    device_class: SensorDeviceClass,
    unit: str,
    precision: int,
    *,
    total_enabled: bool = True,
    phases_enabled: bool = True,
    state_class: SensorStateClass = SensorStateClass.MEASUREMENT,
    convert: Callable[[Value], NativeValue] | None = None,
) -> Iterable[MeterHubSensorEntityDescription]:
    """Descriptions of a quantity as a total and per phase (``{phase}`` in the name)."""
    common: dict[str, Any] = {
        "device_class": device_class,
        "native_unit_of_measurement": unit,
        "state_class": state_class,
        "suggested_display_precision": precision,
        "convert": convert,
    }
    yield MeterHubSensorEntityDescription(
        key=quantity,
        translation_key=translation_key,
        entity_registry_enabled_default=total_enabled,
        **common,
    )
    for phase in PHASES:
        yield MeterHubSensorEntityDescription(
            key=phase_key(quantity, phase),
            translation_key=f"{translation_key}_phase",
            translation_placeholders={"phase": str(phase)},
            entity_registry_enabled_default=phases_enabled,
            **common,
        )


def _energy(direction: str) -> Iterable[MeterHubSensorEntityDescription]:
    """Energy counters of one direction: total, per phase, per tariff."""
    quantity = f"energy_{direction}_kwh"
    yield from _electrical(
        quantity,
        f"energy_{direction}",
        SensorDeviceClass.ENERGY,
        UnitOfEnergy.KILO_WATT_HOUR,
        3,
        state_class=SensorStateClass.TOTAL_INCREASING,
    )
    for tariff in TARIFFS:
        yield MeterHubSensorEntityDescription(
            key=tariff_key(quantity, tariff),
            translation_key=f"energy_{direction}_tariff",
            translation_placeholders={"tariff": str(tariff)},
            device_class=SensorDeviceClass.ENERGY,
            native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
            state_class=SensorStateClass.TOTAL_INCREASING,
            suggested_display_precision=3,
        )


def _reactive_energy(kind: str) -> Iterable[MeterHubSensorEntityDescription]:
    """Reactive energy counters of one kind (inductive, capacitive), per phase."""
    for phase in PHASES:
        yield MeterHubSensorEntityDescription(
            key=phase_key(f"reactive_energy_{kind}_kvarh", phase),
            translation_key=f"reactive_energy_{kind}_phase",
            translation_placeholders={"phase": str(phase)},
            device_class=REACTIVE_ENERGY,
            native_unit_of_measurement=KILO_VOLT_AMPERE_REACTIVE_HOUR,
            state_class=SensorStateClass.TOTAL_INCREASING,
            suggested_display_precision=3,
            entity_registry_enabled_default=False,
        )


def _event_counters(
    quantity: str, translation_key: str
) -> Iterable[MeterHubSensorEntityDescription]:
    for phase in PHASES:
        yield MeterHubSensorEntityDescription(
            key=phase_key(quantity, phase),
            translation_key=translation_key,
            translation_placeholders={"phase": str(phase)},
            entity_category=EntityCategory.DIAGNOSTIC,
        )


SENSORS: dict[str, MeterHubSensorEntityDescription] = {
    description.key: description
    for description in (
        *_electrical("power_w", "power", SensorDeviceClass.POWER, UnitOfPower.WATT, 0),
        *_electrical(
            "voltage_v", "voltage", SensorDeviceClass.VOLTAGE, UnitOfElectricPotential.VOLT, 1
        ),
        *_electrical(
            "current_a", "current", SensorDeviceClass.CURRENT, UnitOfElectricCurrent.AMPERE, 2
        ),
        *_electrical(
            "power_factor",
            "power_factor",
            SensorDeviceClass.POWER_FACTOR,
            PERCENTAGE,
            0,
            total_enabled=False,
            phases_enabled=False,
            convert=_percent,
        ),
        *_electrical(
            "frequency_hz",
            "frequency",
            SensorDeviceClass.FREQUENCY,
            UnitOfFrequency.HERTZ,
            2,
            phases_enabled=False,
        ),
        *_electrical(
            "apparent_power_va",
            "apparent_power",
            SensorDeviceClass.APPARENT_POWER,
            UnitOfApparentPower.VOLT_AMPERE,
            0,
            total_enabled=False,
            phases_enabled=False,
        ),
        *_electrical(
            "reactive_power_var",
            "reactive_power",
            SensorDeviceClass.REACTIVE_POWER,
            UnitOfReactivePower.VOLT_AMPERE_REACTIVE,
            0,
            total_enabled=False,
            phases_enabled=False,
        ),
        *_electrical(
            "apparent_current_a",
            "apparent_current",
            SensorDeviceClass.CURRENT,
            UnitOfElectricCurrent.AMPERE,
            2,
            total_enabled=False,
            phases_enabled=False,
        ),
        *_electrical(
            "reactive_current_a",
            "reactive_current",
            SensorDeviceClass.CURRENT,
            UnitOfElectricCurrent.AMPERE,
            2,
            total_enabled=False,
            phases_enabled=False,
        ),
        *_energy("import"),
        *_energy("export"),
        *_reactive_energy("inductive"),
        *_reactive_energy("capacitive"),
        *_event_counters("voltage_sag_count", "voltage_sags_phase"),
        *_event_counters("voltage_swell_count", "voltage_swells_phase"),
        MeterHubSensorEntityDescription(
            key="grid_power_w",
            translation_key="grid_power",
            device_class=SensorDeviceClass.POWER,
            native_unit_of_measurement=UnitOfPower.WATT,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
        ),
        MeterHubSensorEntityDescription(
            key="active_tariff",
            translation_key="active_tariff",
            device_class=SensorDeviceClass.ENUM,
            options=[str(tariff) for tariff in TARIFFS],
            convert=_text,
        ),
        MeterHubSensorEntityDescription(
            key="any_power_fail_count",
            translation_key="any_power_fail_count",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="long_power_fail_count",
            translation_key="long_power_fail_count",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="average_power_w",
            translation_key="average_power",
            device_class=SensorDeviceClass.POWER,
            native_unit_of_measurement=UnitOfPower.WATT,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
        ),
        MeterHubSensorEntityDescription(
            key="monthly_peak_power_w",
            translation_key="monthly_peak_power",
            device_class=SensorDeviceClass.POWER,
            native_unit_of_measurement=UnitOfPower.WATT,
            suggested_display_precision=0,
        ),
        MeterHubSensorEntityDescription(
            key="monthly_peak_at",
            translation_key="monthly_peak_at",
            device_class=SensorDeviceClass.TIMESTAMP,
        ),
        MeterHubSensorEntityDescription(
            key="meter_model",
            translation_key="meter_model",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="meter_id",
            translation_key="meter_id",
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
        ),
        MeterHubSensorEntityDescription(
            key="dsmr_version",
            translation_key="dsmr_version",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="water_flow_lpm",
            translation_key="water_flow",
            device_class=SensorDeviceClass.VOLUME_FLOW_RATE,
            native_unit_of_measurement=UnitOfVolumeFlowRate.LITERS_PER_MINUTE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=1,
        ),
        MeterHubSensorEntityDescription(
            key="water_total_m3",
            translation_key="water_total",
            device_class=SensorDeviceClass.WATER,
            native_unit_of_measurement=UnitOfVolume.CUBIC_METERS,
            state_class=SensorStateClass.TOTAL_INCREASING,
            suggested_display_precision=3,
        ),
        MeterHubSensorEntityDescription(
            key="water_offset_m3",
            translation_key="water_offset",
            device_class=SensorDeviceClass.VOLUME,
            native_unit_of_measurement=UnitOfVolume.CUBIC_METERS,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
            suggested_display_precision=3,
        ),
        MeterHubSensorEntityDescription(
            key="wifi_ssid",
            translation_key="wifi_ssid",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="wifi_strength",
            translation_key="wifi_strength",
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="measured_at",
            translation_key="measured_at",
            device_class=SensorDeviceClass.TIMESTAMP,
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="smart_meter_measured_at",
            translation_key="smart_meter_measured_at",
            device_class=SensorDeviceClass.TIMESTAMP,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
        ),
        MeterHubSensorEntityDescription(
            key="wifi_rssi_db",
            translation_key="wifi_rssi",
            device_class=SensorDeviceClass.SIGNAL_STRENGTH,
            native_unit_of_measurement=SIGNAL_STRENGTH_DECIBELS,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="uptime_s",
            translation_key="uptime",
            device_class=SensorDeviceClass.DURATION,
            native_unit_of_measurement=UnitOfTime.SECONDS,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
        ),
        MeterHubSensorEntityDescription(
            key="state_of_charge_pct",
            translation_key="state_of_charge",
            device_class=SensorDeviceClass.BATTERY,
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
        ),
        MeterHubSensorEntityDescription(
            key="battery_cycles",
            translation_key="battery_cycles",
            state_class=SensorStateClass.TOTAL_INCREASING,
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        MeterHubSensorEntityDescription(
            key="battery_count",
            translation_key="battery_count",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        *(
            MeterHubSensorEntityDescription(
                key=f"battery_group_{quantity}_w",
                translation_key=f"battery_group_{quantity}",
                device_class=SensorDeviceClass.POWER,
                native_unit_of_measurement=UnitOfPower.WATT,
                state_class=SensorStateClass.MEASUREMENT,
                suggested_display_precision=0,
                entity_category=category,
            )
            for quantity, category in (
                ("power", None),
                ("target_power", None),
                ("max_consumption", EntityCategory.DIAGNOSTIC),
                ("max_production", EntityCategory.DIAGNOSTIC),
            )
        ),
    )
}

# External meters: the device class follows the unit the meter states.
_EXTERNAL_UNITS: dict[str, str] = {
    "m³": UnitOfVolume.CUBIC_METERS,
    "GJ": UnitOfEnergy.GIGA_JOULE,
    "MJ": UnitOfEnergy.MEGA_JOULE,
    "kWh": UnitOfEnergy.KILO_WATT_HOUR,
    "MWh": UnitOfEnergy.MEGA_WATT_HOUR,
}
_VOLUME_CLASSES = {
    "gas_meter": SensorDeviceClass.GAS,
    "water_meter": SensorDeviceClass.WATER,
    "warm_water_meter": SensorDeviceClass.WATER,
}


def external_description(external: ExternalMeter) -> MeterHubSensorEntityDescription:
    """Description of the reading of an external meter, from its type and stated unit."""
    unit = _EXTERNAL_UNITS.get(external.unit or "", external.unit)
    device_class: SensorDeviceClass | None = None
    if unit == UnitOfVolume.CUBIC_METERS:
        device_class = _VOLUME_CLASSES.get(external.kind, SensorDeviceClass.VOLUME)
    elif unit in _EXTERNAL_UNITS.values():
        device_class = SensorDeviceClass.ENERGY
    return MeterHubSensorEntityDescription(
        key="value",
        translation_key=None if device_class else "external_value",
        device_class=device_class,
        native_unit_of_measurement=unit,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=3,
    )


EXTERNAL_MEASURED_AT = MeterHubSensorEntityDescription(
    key="measured_at",
    translation_key="external_measured_at",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create sensors for every key the meters report, now and whenever a new one appears."""
    coordinator = entry.runtime_data.coordinator
    # The unique ids that have an entity, each with its meter's serial and external meter key
    # (None for the meter's own sensors). By unique id: an entity the user disabled or removed
    # is created again on its own, never with its siblings.
    created: Created = {}
    bounds = ExternalMeterBounds()

    @callback
    def add_new_sensors() -> None:
        new: list[MeterHubSensor] = []
        for serial, meter in coordinator.data.items():
            new.extend(
                MeterReadingSensor(coordinator, serial, SENSORS[key], created)
                for key in (*meter.reading.values, *meter.reading.expected)
                if key in SENSORS and f"{serial}_{key}" not in created
            )
            externals = meter.reading.externals
            new.extend(
                ExternalReadingSensor(coordinator, serial, ext_key, description, created)
                for ext_key in bounds.admitted(serial, externals.values(), created)
                for description in (external_description(externals[ext_key]), EXTERNAL_MEASURED_AT)
                if external_unique_id(serial, externals[ext_key], description) not in created
            )
        if new:
            async_add_entities(new)

    add_new_sensors()
    entry.async_on_unload(coordinator.async_add_listener(add_new_sensors))


type Created = dict[str, tuple[str, str | None]]


def external_unique_id(
    parent: str, external: ExternalMeter, description: SensorEntityDescription
) -> str:
    """Unique id of a sensor of an external meter, scoped to the meter that reads it."""
    return f"{external_device_id(parent, external)}_{description.key}"


class ExternalMeterBounds:
    """Which external meters of a parent get entities: a bounded number, with bounded ids.

    A device that reports more (a broken or hostile one: 150 new ids a poll) would otherwise add
    devices and entities without end. Each bound is logged once when a parent exceeds it, and
    once when it is back within it.
    """

    def __init__(self) -> None:
        """Start with every parent within its bounds."""
        self._exceeded: set[tuple[str, str]] = set()

    def admitted(
        self, parent: str, externals: Iterable[ExternalMeter], created: Created
    ) -> list[str]:
        """Keys of the external meters of ``parent`` that have, or may get, entities."""
        have = {ext for serial, ext in created.values() if serial == parent and ext is not None}
        room = MAX_EXTERNAL_METERS - len(have)
        admitted: list[str] = []
        too_many = too_long = False
        for external in externals:
            if max(len(external.meter_id), len(external.kind)) > MAX_ID_LENGTH:
                too_long = True
            elif external.key in have:
                admitted.append(external.key)
            elif room > 0:
                room -= 1
                admitted.append(external.key)
            else:
                too_many = True
        self._report(
            parent, "too_many", too_many, f"more than {MAX_EXTERNAL_METERS} external meters"
        )
        self._report(
            parent,
            "too_long",
            too_long,
            f"external meter ids longer than {MAX_ID_LENGTH} characters",
        )
        return admitted

    def _report(self, parent: str, bound: str, exceeded: bool, what: str) -> None:
        if exceeded and (parent, bound) not in self._exceeded:
            self._exceeded.add((parent, bound))
            LOGGER.warning("Meter %s reports %s: they are ignored", parent, what)
        elif not exceeded and (parent, bound) in self._exceeded:
            self._exceeded.discard((parent, bound))
            LOGGER.info("Meter %s no longer reports %s", parent, what)


class MeterHubSensor(MeterHubEntity, RestoreSensor):
    """A value of a meter's reading, written only when it changes; counters go through a guard.

    Write on change: at each poll most values are the same as at the last one, and writing an
    unchanged state costs Home Assistant about as much as the rest of the poll. So the sensor
    keeps what it published (``_published``: value and availability, behind ``native_value`` and
    ``available``) and the inputs it came from (``_inputs``: raw value and the source's health),
    and writes only when the published state changes (``scripts/bench``, CPU per poll against
    core's homewizard integration: 0.62 with it, 0.95 when every poll writes). A counter's guard
    is given every poll anyway: its hold ends on the time of readings. Plain attributes behind
    plain properties, not ``_attr_native_value``: that cached property would drop and refill its
    cache on every change.
    """

    entity_description: MeterHubSensorEntityDescription

    def __init__(
        self,
        coordinator: MeterHubCoordinator,
        serial: str,
        description: MeterHubSensorEntityDescription,
        unique_id: str,
        created: tuple[Created, str | None],
    ) -> None:
        """Initialise the sensor of ``description`` on meter ``serial``.

        ``created`` is the platform's record of the sensors it made and this one's external
        meter key: the sensor is in it from now on (also one Home Assistant does not add, being
        disabled, so that it is not made again at every poll) until it is removed.
        """
        super().__init__(coordinator, serial)
        self.entity_description = description
        self._attr_unique_id = unique_id
        self._created = created[0]
        self._created[unique_id] = (serial, created[1])
        self._published: tuple[NativeValue, bool] = (None, False)
        self._inputs: tuple[Value | None, bool] | None = None
        self._guard: CounterGuard | None = None
        # The meter's data last given to the guard: the same again is no new reading.
        self._observed: MeterData | None = None
        if description.state_class is SensorStateClass.TOTAL_INCREASING:
            bound = rise_bound(description.device_class, description.native_unit_of_measurement)
            self._guard = CounterGuard(unique_id, bound, coordinator.counter_reset_rule)

    @abstractmethod
    def _raw_value(self) -> Value | None:
        """The value of this sensor in the coordinator's latest data (None: not reported)."""

    def _current(self) -> tuple[NativeValue, bool]:
        """The state to show now and whether the entity is available."""
        value = self._raw_value()
        if value is None or not self.coordinator.last_update_success:
            return None, False
        if self._guard is not None:
            published = self._guard.published
            return published, published is not None
        convert = self.entity_description.convert
        return convert(value) if convert else value, True

    def _observe(self, guard: CounterGuard) -> None:
        """Give ``guard`` the counter of a new reading, or tell it that a poll had none."""
        value = self._raw_value()
        meter = self.coordinator.data.get(self.serial) if self.coordinator.data else None
        if (
            meter is None
            or meter is self._observed  # a failed poll that kept the last reading
            or not self.coordinator.last_update_success
            or not isinstance(value, int | float)
        ):
            guard.interrupt()
            return
        self._observed = meter
        guard.accept(value, dt_util.utcnow().timestamp())

    async def async_added_to_hass(self) -> None:
        """Restore the guard's reference first, so a glitch after a restart cannot dip or jump."""
        await super().async_added_to_hass()
        if self._guard is not None:
            await self._async_restore_guard(self._guard)
            self._observe(self._guard)
        self._published = self._current()

    async def _async_restore_guard(self, guard: CounterGuard) -> None:
        """The reference stored at the last stop, also when the entity was unavailable then.

        Data of an older release has no reference: its last published value, else the last
        numeric state, with the time unknown.
        """
        extra = await self.async_get_last_extra_data()
        stored = extra.as_dict() if extra is not None else {}
        reference = stored.get(GUARD_KEY)
        if isinstance(reference, dict):
            value, at = reference.get("value"), reference.get("at")
            confirmed_at = reference.get("confirmed_at")
            if (
                isinstance(value, int | float)
                and isinstance(at, int | float | None)
                and isinstance(confirmed_at, int | float | None)
            ):
                guard.restore(value, at, confirmed_at)
            return
        value = stored.get("native_value")
        if not isinstance(value, int | float) and (last := await self.async_get_last_state()):
            value = _number(last.state)
        if isinstance(value, int | float):
            guard.restore(value, None)

    @property
    def extra_restore_state_data(self) -> SensorExtraStoredData:
        """The sensor's data, and the counter guard's reference."""
        data = super().extra_restore_state_data
        if self._guard is None:
            return data
        return CounterStoredData(
            data.native_value,
            data.native_unit_of_measurement,
            self._guard.published,
            self._guard.published_at,
            self._guard.confirmed_at,
        )

    async def async_will_remove_from_hass(self) -> None:
        """Forget the unique id so the sensor is created again if its data comes back."""
        await super().async_will_remove_from_hass()
        self._created.pop(self._attr_unique_id or "", None)

    @property
    def native_value(self) -> NativeValue:
        """The published value."""
        return self._published[0]

    @property
    def available(self) -> bool:
        """Available while the source answers and this value is reported."""
        return self._published[1]

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write the state only when it changed (see the class docstring)."""
        if (updated := self.coordinator.updated_serials) is not None and self.serial not in updated:
            return  # another meter's update: this one's reading is no new one
        inputs = (self._raw_value(), self.coordinator.last_update_success)
        if self._guard is not None:
            self._observe(self._guard)
        elif inputs == self._inputs:
            return
        self._inputs = inputs
        published = self._current()
        if published != self._published:
            self._published = published
            self.async_write_ha_state()


class MeterReadingSensor(MeterHubSensor):
    """A value of a meter's own reading."""

    def __init__(
        self,
        coordinator: MeterHubCoordinator,
        serial: str,
        description: MeterHubSensorEntityDescription,
        created: Created,
    ) -> None:
        """Initialise the sensor of ``description.key`` on meter ``serial``."""
        self._key = description.key
        unique_id = f"{serial}_{description.key}"
        super().__init__(coordinator, serial, description, unique_id, (created, None))
        self._attr_device_info = meter_device_info(coordinator.data[serial].info)

    def _raw_value(self) -> Value | None:
        meter = self.coordinator.data.get(self.serial)
        return None if meter is None else meter.reading.values.get(self._key)


class ExternalReadingSensor(MeterHubSensor):
    """The reading, or its time, of an external meter (a sub-device of its parent meter)."""

    def __init__(
        self,
        coordinator: MeterHubCoordinator,
        serial: str,
        external_key: str,
        description: MeterHubSensorEntityDescription,
        created: Created,
    ) -> None:
        """Initialise the sensor of external meter ``external_key`` read through ``serial``."""
        self._external_key = external_key
        external = coordinator.data[serial].reading.externals[external_key]
        unique_id = external_unique_id(serial, external, description)
        super().__init__(coordinator, serial, description, unique_id, (created, external_key))
        self._attr_device_info = external_device_info(coordinator, serial, external)

    def _raw_value(self) -> Value | None:
        meter = self.coordinator.data.get(self.serial)
        external = None if meter is None else meter.reading.externals.get(self._external_key)
        if external is None:
            return None
        if self.entity_description.key == "measured_at":
            return external.measured_at
        return external.value
