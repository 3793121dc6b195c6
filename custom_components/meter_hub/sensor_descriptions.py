"""The sensor descriptions: one per canonical key of the normalised reading, and the external meters'.

A key a source reports becomes an entity (``sensor.py``), also when it first appears after setup;
what it is (unit, device and state class, precision, category, enabled by default) is said here,
for the meters and for the gas, water and heat meters behind a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
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
from homeassistant.helpers.typing import StateType

from .api.model import PHASES, TARIFFS, ExternalMeter, Value, exact_percent, phase_key, tariff_key
from .compat import KILO_VOLT_AMPERE_REACTIVE_HOUR, REACTIVE_ENERGY

type NativeValue = StateType | datetime


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
