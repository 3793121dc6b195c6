"""The normalised reading that every meter source produces.

This module is the seam between the vendor clients and Home Assistant: a client turns its JSON
into a ``Reading``; the sensor layer turns a ``Reading`` into entities through one table of
descriptions keyed by the canonical keys below. A new vendor means a new client module that
produces these keys, and no change in the sensor layer.

Canonical keys are also the suffixes of entity unique ids, so they never change once shipped.
A key that is absent from ``Reading.values`` means "not reported" (the source sent null, left
the field out, or sent a value that failed validation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

# bool is an int: switches (``cloud_enabled``) are kept as bool
type Value = float | int | str | datetime

PHASES: Final = (1, 2, 3)
TARIFFS: Final = (1, 2, 3, 4)


def phase_key(quantity: str, phase: int) -> str:
    """Key of a per-phase quantity: ``phase_key("power_w", 2) == "power_l2_w"``.

    The quantity is a total key whose last ``_`` part is its unit (``power_w``) or ``count``.
    A quantity without a unit part (``power_factor``) gets the phase appended.
    """
    name, _, unit = quantity.rpartition("_")
    if quantity in UNITLESS_QUANTITIES:
        return f"{quantity}_l{phase}"
    return f"{name}_l{phase}_{unit}"


def tariff_key(quantity: str, tariff: int) -> str:
    """Key of a per-tariff counter: ``tariff_key("energy_import_kwh", 1) == "energy_import_t1_kwh"``."""
    name, _, unit = quantity.rpartition("_")
    return f"{name}_t{tariff}_{unit}"


UNITLESS_QUANTITIES: Final = frozenset({"power_factor"})

# Quantities that exist per phase (L1..L3) and, most of them, as a total over all phases.
PHASE_QUANTITIES: Final = (
    "power_w",
    "voltage_v",
    "current_a",
    "power_factor",  # 0..1 in the reading; the sensor shows percent
    "frequency_hz",
    "apparent_power_va",
    "reactive_power_var",
    "apparent_current_a",
    "reactive_current_a",
    "energy_import_kwh",
    "energy_export_kwh",
    "voltage_sag_count",
    "voltage_swell_count",
    # reactive energy, per phase only (an IAMMETER three-phase meter's ``EA.Reactive``)
    "reactive_energy_inductive_kvarh",
    "reactive_energy_capacitive_kvarh",
)

# Tariff counters (T1..T4) of a smart meter.
TARIFF_QUANTITIES: Final = ("energy_import_kwh", "energy_export_kwh")

# Every other key a source may report.
SCALAR_KEYS: Final = (
    # totals over all phases (power_w is signed: positive = taken from the grid / consumed)
    "power_w",
    "voltage_v",
    "current_a",
    "power_factor",
    "frequency_hz",
    "apparent_power_va",
    "reactive_power_var",
    "apparent_current_a",
    "reactive_current_a",
    "energy_import_kwh",
    "energy_export_kwh",
    # grid exchange, signed, positive = import (the energy dashboard's "grid power")
    "grid_power_w",
    # smart meter (DSMR) data
    "active_tariff",  # int 1..4
    "any_power_fail_count",
    "long_power_fail_count",
    "average_power_w",  # average demand (Belgian capacity tariff)
    "monthly_peak_power_w",
    "monthly_peak_at",  # datetime, aware
    "meter_model",
    "meter_id",  # the smart meter's own identifier
    "dsmr_version",
    # water meter
    "water_flow_lpm",
    "water_total_m3",
    "water_offset_m3",
    # connection
    "wifi_ssid",
    "wifi_strength",  # percent
    # when the meter itself took/uploaded the reading (cloud meters upload once a minute)
    "measured_at",
    # when the smart meter sent the measurement to the P1 meter (its own clock; API v2)
    "smart_meter_measured_at",
    # device (API v2 system)
    "wifi_rssi_db",
    "uptime_s",
    "cloud_enabled",  # bool
    "api_v1_enabled",  # bool
    # a battery itself (Plug-In Battery)
    "state_of_charge_pct",
    "battery_cycles",
    # the batteries a P1 or kWh meter controls (API v2 batteries), power signed as power_w
    "battery_count",
    "battery_group_power_w",
    "battery_group_target_power_w",
    "battery_group_max_consumption_w",
    "battery_group_max_production_w",
)

# The control modes of a group of batteries (``battery_mode``).
BATTERY_MODES: Final = ("zero", "to_full", "standby", "predictive")
# Keys whose value is a bool: binary sensors, not sensors.
SWITCH_KEYS: Final = frozenset(
    {
        "cloud_enabled",
        "api_v1_enabled",
    }
)


# The state of a device's controls (``api/controls.py``), read back after every write.
CONTROL_KEYS: Final = (
    "switch_on",  # bool: the relay of a switchable device is on
    "switch_lock",  # bool: the relay is locked on
    "brightness",  # status light brightness, percent 0..100
    "cloud_enabled",  # bool: the device talks to its vendor's cloud
    # the batteries a P1 or kWh meter controls (API v2 batteries)
    "battery_mode",  # one of BATTERY_MODES
    "battery_charge_allowed",  # bool
    "battery_discharge_allowed",  # bool
    "battery_charge_to_full",  # bool: charging to full now
)


# Bounds on text from a vendor. Identifiers become parts of unique ids and device identifiers:
# the longest real ones are a DSMR gas meter's 34 hex digits and a 12-digit serial, so 64 leaves
# room. Other text (names, SSIDs of at most 32 bytes, firmware, the 96 hex digits of a DSMR
# equipment id) fits in 128.
MAX_ID_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 128
# A P1 meter reads at most 4 M-Bus meters (gas, water, heat); twice that leaves room for the
# legacy gas fields and for firmware that lists a meter twice.
MAX_EXTERNAL_METERS: Final = 8


def vendor_text(raw: object, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    r"""``raw`` when it is text Home Assistant can store and show, else None.

    Text from a device or a cloud ends up in states, registries, logs and the recorder, which
    must encode it: a lone surrogate (``"\ud800"`` is valid JSON) fails every save. So only
    printable text is accepted (no control, format or separator characters, no surrogates;
    the ASCII space is fine), not blank, and at most ``max_length`` characters.
    """
    if not isinstance(raw, str) or not 0 < len(raw) <= max_length:
        return None
    return raw if raw.isprintable() and not raw.isspace() else None


def vendor_identifier(raw: object, max_length: int = MAX_ID_LENGTH) -> str | None:
    """An identifier as text: valid vendor text of at most ``max_length``, or a number."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    return vendor_text(raw, max_length)


def exact_sum(parts: Iterable[float]) -> float:
    """The sum of ``parts`` as their decimal notations add up (0.1 + 0.2 is 0.3), not rounded."""
    return float(sum((Decimal(repr(part)) for part in parts), Decimal()))


def exact_percent(fraction: float) -> float:
    """``fraction`` in percent, shifted in decimal notation (0.81688 is 81.688), not rounded."""
    return float(Decimal(repr(fraction)).scaleb(2))


def all_keys() -> frozenset[str]:
    """Every canonical key of ``Reading.values``."""
    keys = set(SCALAR_KEYS) | set(CONTROL_KEYS)
    keys.update(phase_key(q, p) for q in PHASE_QUANTITIES for p in PHASES)
    keys.update(tariff_key(q, t) for q in TARIFF_QUANTITIES for t in TARIFFS)
    return frozenset(keys)


@dataclass(frozen=True, slots=True)
class ExternalMeter:
    """A utility meter read through another device (gas, water, heat behind a P1 meter).

    ``kind`` is the vendor's type string (``gas_meter``, ``water_meter``, ``heat_meter``,
    ``warm_water_meter``, ``inlet_heat_meter``, or an unknown one kept as is); ``unit`` is the
    unit the device states, normalised (``m³`` for ``m3``), or None when not stated.
    """

    meter_id: str
    kind: str
    value: float | None
    unit: str | None
    measured_at: datetime | None

    @property
    def key(self) -> str:
        """Stable identity of this external meter: its type and id."""
        return f"{self.kind}_{self.meter_id}"


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What identifies a physical meter and becomes its Home Assistant device."""

    serial: str
    manufacturer: str
    model: str | None = None
    model_id: str | None = None
    name: str | None = None
    sw_version: str | None = None
    configuration_url: str | None = None
    # What the device can be told to do (``api.controls.Control`` values).
    controls: tuple[str, ...] = ()
    # The modes the batteries it controls can be set to (``Control.BATTERY_MODE``).
    battery_modes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll's worth of data for one meter.

    ``expected`` names keys the meter has even while it does not report them (a total whose
    phase is missing, a meter that has not uploaded yet): their sensors exist, unavailable.
    """

    values: dict[str, Value] = field(default_factory=dict)
    externals: dict[str, ExternalMeter] = field(default_factory=dict)
    expected: tuple[str, ...] = ()
