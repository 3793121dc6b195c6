"""Numbers: the brightness of a device's status light."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.number import NumberEntity, NumberEntityDescription
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api.controls import Control, DeviceControls
from .coordinator import MeterHubConfigEntry
from .entity import ControlDescription, MeterControlEntity, control_entities, has_value
from .helpers import device_write

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MeterNumberDescription(ControlDescription, NumberEntityDescription):
    """A number: the reading's key holds its value, ``set_fn`` changes it."""

    set_fn: Callable[[DeviceControls, int], Awaitable[None]]


NUMBERS: tuple[MeterNumberDescription, ...] = (
    MeterNumberDescription(
        key="brightness",
        translation_key="status_light_brightness",
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=PERCENTAGE,
        native_min_value=0,
        native_max_value=100,
        native_step=1,
        exists_fn=has_value(Control.BRIGHTNESS),
        set_fn=lambda controls, percent: controls.set_brightness(percent),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The numbers of every device that has them."""
    async_add_entities(control_entities(entry.runtime_data.coordinator, NUMBERS, MeterNumber))


class MeterNumber(MeterControlEntity, NumberEntity):
    """A setting whose value is what the device reported last."""

    entity_description: MeterNumberDescription

    @property
    def native_value(self) -> float | None:
        """What the device reported."""
        value = self.values.get(self.entity_description.key)
        return value if isinstance(value, int | float) else None

    @device_write
    async def async_set_native_value(self, value: float) -> None:
        """Send the new value to the device."""
        set_fn = self.entity_description.set_fn
        await self.coordinator.async_control(lambda controls: set_fn(controls, round(value)))
