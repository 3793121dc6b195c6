"""Switches: an Energy Socket's relay and switch lock, a device's cloud connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchDeviceClass, SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api.controls import Control, DeviceControls
from .const import DOMAIN
from .coordinator import MeterHubConfigEntry
from .entity import ControlDescription, MeterControlEntity, control_entities, has_value
from .helpers import device_write

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MeterSwitchDescription(ControlDescription, SwitchEntityDescription):
    """A switch: the reading's key holds its state, ``set_fn`` changes it."""

    set_fn: Callable[[DeviceControls, bool], Awaitable[None]]
    # The switch lock holds it on: switching it is refused.
    held_by_lock: bool = False


SWITCHES: tuple[MeterSwitchDescription, ...] = (
    MeterSwitchDescription(
        key="switch_on",
        name=None,  # the socket's main feature: the entity bears the device's name
        device_class=SwitchDeviceClass.OUTLET,
        exists_fn=has_value(Control.POWER),
        set_fn=lambda controls, on: controls.set_power(on),
        held_by_lock=True,
    ),
    MeterSwitchDescription(
        key="switch_lock",
        translation_key="switch_lock",
        entity_category=EntityCategory.CONFIG,
        exists_fn=has_value(Control.SWITCH_LOCK),
        set_fn=lambda controls, on: controls.set_switch_lock(on),
    ),
    MeterSwitchDescription(
        key="cloud_enabled",
        translation_key="cloud_connection",
        entity_category=EntityCategory.CONFIG,
        exists_fn=has_value(Control.CLOUD),
        set_fn=lambda controls, on: controls.set_cloud(on),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The switches of every device that has them."""
    async_add_entities(control_entities(entry.runtime_data.coordinator, SWITCHES, MeterSwitch))


class MeterSwitch(MeterControlEntity, SwitchEntity):
    """A switch whose state is what the device reported last."""

    entity_description: MeterSwitchDescription

    @property
    def is_on(self) -> bool | None:
        """What the device reported."""
        value = self.values.get(self.entity_description.key)
        return value if isinstance(value, bool) else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on."""
        await self._switch(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off."""
        await self._switch(False)

    @device_write
    async def _switch(self, on: bool) -> None:
        if self.entity_description.held_by_lock and self.values.get("switch_lock") is True:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="switch_locked")
        set_fn = self.entity_description.set_fn
        await self.coordinator.async_control(lambda controls: set_fn(controls, on))
