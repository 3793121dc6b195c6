"""Binary sensors: cloud uploads still arriving, and the on/off values of a reading.

The on/off values are settings of a HomeWizard device that it cannot be told to change here
(the Plug-In Battery's cloud connection, API v1 seen over v2); the others are switches.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api.controls import controlled_keys
from .coordinator import MeterHubConfigEntry, MeterHubCoordinator
from .entity import MeterHubEntity, meter_device_info

PARALLEL_UPDATES = 0

# IAMMETER meters upload once a minute; a meter whose last upload is older than this is offline.
UPLOAD_OVERDUE = timedelta(minutes=10)

UPLOADING = BinarySensorEntityDescription(
    key="uploading",
    translation_key="uploading",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


SWITCH_STATES: dict[str, BinarySensorEntityDescription] = {
    description.key: description
    for description in (
        BinarySensorEntityDescription(
            key="cloud_enabled",
            translation_key="cloud_enabled",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
        BinarySensorEntityDescription(
            key="api_v1_enabled",
            translation_key="api_v1_enabled",
            entity_category=EntityCategory.DIAGNOSTIC,
        ),
    )
}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Binary sensors of every meter: uploads (if it uploads) and each on/off value it reports."""
    coordinator = entry.runtime_data.coordinator
    created: set[tuple[str, str]] = set()

    @callback
    def add_new_sensors() -> None:
        new: list[MeterBinarySensor] = []
        for serial, meter in coordinator.data.items():
            if (serial, UPLOADING.key) not in created and (
                "measured_at" in meter.reading.values or "measured_at" in meter.reading.expected
            ):
                new.append(UploadingSensor(coordinator, serial))
                created.add((serial, UPLOADING.key))
            # the state of a control the device has is shown by the control's entity
            shown = SWITCH_STATES.keys() - controlled_keys(meter.info.controls)
            for key in sorted(meter.reading.values.keys() & shown):
                if (serial, key) not in created:
                    new.append(SwitchStateSensor(coordinator, serial, SWITCH_STATES[key]))
                    created.add((serial, key))
        if new:
            async_add_entities(new)

    add_new_sensors()
    entry.async_on_unload(coordinator.async_add_listener(add_new_sensors))


class MeterBinarySensor(MeterHubEntity, BinarySensorEntity):
    """A binary sensor of a meter, on the meter's device."""

    def __init__(
        self,
        coordinator: MeterHubCoordinator,
        serial: str,
        description: BinarySensorEntityDescription,
    ) -> None:
        """Create the sensor of ``description.key`` on meter ``serial``."""
        super().__init__(coordinator, serial)
        self.entity_description = description
        self._attr_unique_id = f"{serial}_{description.key}"
        self._attr_device_info = meter_device_info(coordinator.data[serial].info)


class UploadingSensor(MeterBinarySensor):
    """On while the meter's last upload is recent."""

    def __init__(self, coordinator: MeterHubCoordinator, serial: str) -> None:
        """Create the sensor of meter ``serial``."""
        super().__init__(coordinator, serial, UPLOADING)
        # A meter that always uploads (a cloud's) has an upload time even before its first.
        self._always_uploads = "measured_at" in coordinator.data[serial].reading.expected

    @property
    def is_on(self) -> bool | None:
        """Whether the meter uploaded within ``UPLOAD_OVERDUE``.

        A cloud meter without an upload time has not uploaded at all: off.
        """
        meter = self.coordinator.data.get(self.serial)
        measured_at = meter.reading.values.get("measured_at") if meter else None
        if not isinstance(measured_at, datetime):
            return False if self._always_uploads else None
        return dt_util.utcnow() - measured_at < UPLOAD_OVERDUE


class SwitchStateSensor(MeterBinarySensor):
    """An on/off value of a meter's reading."""

    @property
    def available(self) -> bool:
        """Available while the source answers and this value is reported."""
        return super().available and self.is_on is not None

    @property
    def is_on(self) -> bool | None:
        """The reported value."""
        meter = self.coordinator.data.get(self.serial)
        value = meter.reading.values.get(self.entity_description.key) if meter else None
        return value if isinstance(value, bool) else None
