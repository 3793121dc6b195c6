"""Selects: the control mode of the Plug-In Batteries a meter controls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api.controls import Control, DeviceControls
from .api.model import MeterInfo
from .coordinator import MeterHubConfigEntry, MeterHubCoordinator
from .entity import ControlDescription, MeterControlEntity, control_entities, has_value
from .helpers import device_write

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MeterSelectDescription(ControlDescription, SelectEntityDescription):
    """A select: the reading's key holds the option, ``options_fn`` lists them, ``select_fn`` sets."""

    options_fn: Callable[[MeterInfo], tuple[str, ...]]
    select_fn: Callable[[DeviceControls, str], Awaitable[None]]


SELECTS: tuple[MeterSelectDescription, ...] = (
    MeterSelectDescription(
        key="battery_mode",
        translation_key="battery_mode",
        exists_fn=has_value(Control.BATTERY_MODE),
        # the modes of the device's API version
        options_fn=lambda info: info.battery_modes,
        select_fn=lambda controls, mode: controls.set_battery_mode(mode),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The selects of every device that has them."""
    async_add_entities(control_entities(entry.runtime_data.coordinator, SELECTS, MeterSelect))


class MeterSelect(MeterControlEntity, SelectEntity):
    """A choice whose option is what the device reported last."""

    entity_description: MeterSelectDescription

    def __init__(
        self, coordinator: MeterHubCoordinator, serial: str, description: MeterSelectDescription
    ) -> None:
        """Offer the options the meter ``serial`` has."""
        super().__init__(coordinator, serial, description)
        self._attr_options = list(description.options_fn(coordinator.data[serial].info))

    @property
    def current_option(self) -> str | None:
        """What the device reported (None for an option its API version does not list)."""
        value = self.values.get(self.entity_description.key)
        return value if isinstance(value, str) and value in self.options else None

    @device_write
    async def async_select_option(self, option: str) -> None:
        """Send the chosen option to the device."""
        select_fn = self.entity_description.select_fn
        await self.coordinator.async_control(lambda controls: select_fn(controls, option))
