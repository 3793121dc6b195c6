"""Binary sensors: whether a meter that uploads to a cloud is still uploading."""

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


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """A connectivity sensor for every meter that uploads (or reports when it last uploaded)."""
    coordinator = entry.runtime_data
    created: set[str] = set()

    @callback
    def add_new_sensors() -> None:
        new = [
            UploadingSensor(coordinator, serial)
            for serial, meter in coordinator.data.items()
            if serial not in created
            and (coordinator.tracks_uploads or "measured_at" in meter.reading.values)
        ]
        created.update(sensor.serial for sensor in new)
        if new:
            async_add_entities(new)

    add_new_sensors()
    entry.async_on_unload(coordinator.async_add_listener(add_new_sensors))


class UploadingSensor(MeterHubEntity, BinarySensorEntity):
    """On while the meter's last upload is recent."""

    entity_description = UPLOADING

    def __init__(self, coordinator: MeterHubCoordinator, serial: str) -> None:
        """Create the sensor of meter ``serial``."""
        super().__init__(coordinator, serial)
        self._attr_unique_id = f"{serial}_{UPLOADING.key}"
        self._attr_device_info = meter_device_info(coordinator.data[serial].info)

    @property
    def is_on(self) -> bool | None:
        """Whether the meter uploaded within ``UPLOAD_OVERDUE``.

        A cloud meter without an upload time has not uploaded at all: off.
        """
        meter = self.coordinator.data.get(self.serial)
        measured_at = meter.reading.values.get("measured_at") if meter else None
        if not isinstance(measured_at, datetime):
            return False if self.coordinator.tracks_uploads else None
        return dt_util.utcnow() - measured_at < UPLOAD_OVERDUE
