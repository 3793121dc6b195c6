"""Base entity: device info, unique ids and availability for every meter entity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api.controls import STATE_KEYS, Control
from .api.model import ExternalMeter, MeterInfo, Value
from .compat import set_parent_device
from .const import DOMAIN
from .coordinator import MeterData, MeterHubCoordinator, external_device_id

# Models of the sub-devices of external meters, by the type their parent reports; their names
# are translated (``device`` in strings.json).
EXTERNAL_METER_NAMES = {
    "gas_meter": "Gas meter",
    "water_meter": "Water meter",
    "warm_water_meter": "Warm water meter",
    "heat_meter": "Heat meter",
    "inlet_heat_meter": "Inlet heat meter",
}


def meter_device_info(info: MeterInfo) -> DeviceInfo:
    """Device of a meter read directly (a HomeWizard device, an IAMMETER meter)."""
    device = DeviceInfo(
        identifiers={(DOMAIN, info.serial)},
        manufacturer=info.manufacturer,
        serial_number=info.serial,
    )
    if info.name is not None:
        device["name"] = info.name
    if info.model is not None:
        device["model"] = info.model
    if info.model_id is not None:
        device["model_id"] = info.model_id
    if info.sw_version is not None:
        device["sw_version"] = info.sw_version
    if info.configuration_url is not None:
        device["configuration_url"] = info.configuration_url
    return device


def external_device_info(
    coordinator: MeterHubCoordinator, parent: str, external: ExternalMeter
) -> DeviceInfo:
    """Device of a utility meter read through ``parent`` (gas or water behind a P1 meter)."""
    name = EXTERNAL_METER_NAMES.get(external.kind)
    device = DeviceInfo(
        identifiers={(DOMAIN, external_device_id(parent, external))},
        model=name or external.kind.replace("_", " ").capitalize(),
        serial_number=external.meter_id,
    )
    if name is None:
        device["name"] = device["model"]
    else:
        device["translation_key"] = external.kind
    set_parent_device(coordinator.hass, device, coordinator.config_entry.entry_id, (DOMAIN, parent))
    return device


class MeterHubEntity(CoordinatorEntity[MeterHubCoordinator]):
    """An entity of one meter of a coordinator."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: MeterHubCoordinator, serial: str) -> None:
        """Attach the entity to the meter ``serial`` of ``coordinator``."""
        super().__init__(coordinator)
        self.serial = serial


@dataclass(frozen=True, kw_only=True)
class ControlDescription(EntityDescription):
    """What every control entity's description has: when the device has it, when it can act."""

    exists_fn: Callable[[MeterData], bool]
    # Default: the control's state (its key) is in the reading.
    available_fn: Callable[[dict[str, Value]], bool] | None = None


def has_control(control: Control) -> Callable[[MeterData], bool]:
    """``exists_fn`` of an action ``control`` (no state): the device has it."""
    return lambda meter: control in meter.info.controls


def has_value(control: Control) -> Callable[[MeterData], bool]:
    """``exists_fn`` of ``control``: the device has it and reports its state."""
    key = STATE_KEYS[control]
    return lambda meter: control in meter.info.controls and key in meter.reading.values


class MeterControlEntity(MeterHubEntity):
    """A control of a meter's device (switch, number, button): writes go to the device."""

    entity_description: ControlDescription

    def __init__(
        self, coordinator: MeterHubCoordinator, serial: str, description: ControlDescription
    ) -> None:
        """Attach the control ``description`` to the meter ``serial``."""
        super().__init__(coordinator, serial)
        self.entity_description = description
        self._attr_unique_id = f"{serial}_{description.key}"
        self._attr_device_info = meter_device_info(coordinator.data[serial].info)

    @property
    def values(self) -> dict[str, Value]:
        """The meter's last reading (empty while it is gone)."""
        meter = self.coordinator.data.get(self.serial)
        return meter.reading.values if meter else {}

    @property
    def available(self) -> bool:
        """Available while the device answers and reports the control's state."""
        if not super().available or self.serial not in self.coordinator.data:
            return False
        available_fn = self.entity_description.available_fn
        if available_fn is None:
            return self.entity_description.key in self.values
        return available_fn(self.values)


def control_entities[D: ControlDescription, E: MeterControlEntity](
    coordinator: MeterHubCoordinator,
    descriptions: tuple[D, ...],
    entity: Callable[[MeterHubCoordinator, str, D], E],
) -> list[E]:
    """The control entities of every meter of ``coordinator`` that has them."""
    return [
        entity(coordinator, serial, description)
        for serial, meter in coordinator.data.items()
        for description in descriptions
        if description.exists_fn(meter)
    ]
