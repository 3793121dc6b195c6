"""Sensors: a key a source reports becomes an entity, also when it first appears after setup.

The descriptions are in ``sensor_descriptions.py``; here are the entities: their published state
(written only when it changed), the counter guard of each cumulative value and what they restore.
This module knows nothing about vendors, HTTP or JSON.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
import math
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorEntityDescription,
    SensorExtraStoredData,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api.model import MAX_EXTERNAL_METERS, MAX_ID_LENGTH, ExternalMeter, Value
from .const import LOGGER
from .coordinator import MeterData, MeterHubConfigEntry, MeterHubCoordinator, external_device_id
from .counter_guard import CounterGuard, rise_bound
from .entity import MeterHubEntity, external_device_info, meter_device_info
from .sensor_descriptions import (
    EXTERNAL_MEASURED_AT,
    SENSORS,
    MeterHubSensorEntityDescription,
    NativeValue,
    external_description,
)

# Coordinator entities: the coordinator does the fetching, nothing to limit here.
PARALLEL_UPDATES = 0


# The counter guard's reference in the stored sensor data.
GUARD_KEY = "counter_guard"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


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
