"""Switches: a socket's relay and lock, the cloud connection, what Plug-In Batteries may do.

The batteries a meter controls: charge, discharge (their permissions), charge to full now.
"""

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
from .api.model import Value
from .const import DOMAIN
from .coordinator import MeterHubConfigEntry
from .entity import ControlDescription, MeterControlEntity, control_entities, has_value
from .helpers import device_write

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MeterSwitchDescription(ControlDescription, SwitchEntityDescription):
    """A switch: the reading's key holds its state, ``set_fn`` changes it."""

    set_fn: Callable[[DeviceControls, bool], Awaitable[None]]
    # Why the device would refuse to switch it now (the translation key of the error), if it would.
    refusal_fn: Callable[[dict[str, Value]], str | None] = lambda values: None


def _held_by_lock(values: dict[str, Value]) -> str | None:
    """The switch lock holds the relay on: switching it is refused."""
    return "switch_locked" if values.get("switch_lock") is True else None


def _allow(direction: str) -> Callable[[DeviceControls, bool], Awaitable[None]]:
    """``set_fn`` of the permission to ``direction`` (charge, discharge)."""
    return lambda controls, on: controls.allow_battery(**{direction: on})


def _held_by_charge_to_full(values: dict[str, Value]) -> str | None:
    """The permissions are read-only while the batteries charge to full (batteries.mdx)."""
    return "battery_charging_to_full" if values.get("battery_mode") == "to_full" else None


SWITCHES: tuple[MeterSwitchDescription, ...] = (
    MeterSwitchDescription(
        key="switch_on",
        name=None,  # the socket's main feature: the entity bears the device's name
        device_class=SwitchDeviceClass.OUTLET,
        exists_fn=has_value(Control.POWER),
        set_fn=lambda controls, on: controls.set_power(on),
        refusal_fn=_held_by_lock,
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
    *(
        MeterSwitchDescription(
            key=f"battery_{direction}_allowed",
            translation_key=f"battery_{direction}_allowed",
            exists_fn=has_value(control),
            set_fn=_allow(direction),
            refusal_fn=_held_by_charge_to_full,
        )
        for direction, control in (
            ("charge", Control.BATTERY_CHARGE),
            ("discharge", Control.BATTERY_DISCHARGE),
        )
    ),
    MeterSwitchDescription(
        key="battery_charge_to_full",
        translation_key="battery_charge_to_full",
        exists_fn=has_value(Control.BATTERY_CHARGE_TO_FULL),
        set_fn=lambda controls, on: controls.set_battery_charge_to_full(on),
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
        if (refusal := self.entity_description.refusal_fn(self.values)) is not None:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key=refusal)
        set_fn = self.entity_description.set_fn
        await self.coordinator.async_control(lambda controls: set_fn(controls, on))
