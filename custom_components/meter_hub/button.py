"""Buttons: let a device's status light blink (identify), restart a device."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonDeviceClass, ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api.controls import Control, DeviceControls
from .api.model import Value
from .coordinator import MeterHubConfigEntry
from .entity import ControlDescription, MeterControlEntity, control_entities, has_control
from .helpers import device_write

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MeterButtonDescription(ControlDescription, ButtonEntityDescription):
    """A button: ``press_fn`` is what it tells the device."""

    press_fn: Callable[[DeviceControls], Awaitable[None]]
    # A button has no state: available while the device answers.
    available_fn: Callable[[dict[str, Value]], bool] | None = lambda values: True


BUTTONS: tuple[MeterButtonDescription, ...] = tuple(
    MeterButtonDescription(
        key=control,
        device_class=device_class,
        entity_category=EntityCategory.CONFIG,
        exists_fn=has_control(control),
        press_fn=press_fn,
    )
    for control, device_class, press_fn in (
        (Control.IDENTIFY, ButtonDeviceClass.IDENTIFY, lambda controls: controls.identify()),
        (Control.REBOOT, ButtonDeviceClass.RESTART, lambda controls: controls.reboot()),
    )
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The buttons of every device that has them."""
    async_add_entities(control_entities(entry.runtime_data.coordinator, BUTTONS, MeterButton))


class MeterButton(MeterControlEntity, ButtonEntity):
    """A button that tells the device to do something."""

    entity_description: MeterButtonDescription

    @device_write
    async def async_press(self) -> None:
        """Tell the device."""
        await self.coordinator.async_control(self.entity_description.press_fn)
