"""The answers of the local API v1 turned into the normalised ``Reading`` of ``api/model.py``.

``parse_data`` never raises on a bad field (the field is left out, which means "not reported"),
only on a payload that is not a JSON object.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import partial
from typing import Any, Final

from custom_components.meter_hub.api.model import (
    TARIFFS,
    ExternalMeter,
    Reading,
    Value,
    tariff_key,
    vendor_identifier,
    vendor_text,
)
from custom_components.meter_hub.api.vendor_values import (
    MAX_NUMBER,
    Check,
    count_number,
    electrical_fields,
    in_range,
    percent_number,
    signed_number,
    smart_meter_id,
    tariff_number,
    text_value,
    unsigned_number,
)

from .errors import InvalidPayload
from .models import BRIGHTNESS_MAX, SINGLE_TARIFF_PRODUCTS

LEGACY_GAS_ID: Final = "legacy_gas"


def _meter_time(raw: object, tz: tzinfo) -> datetime | None:
    """Convert a YYMMDDhhmmss number in the meter's local time to an aware datetime."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10**12:
        return None
    rest, second = divmod(raw, 100)
    rest, minute = divmod(rest, 100)
    rest, hour = divmod(rest, 100)
    rest, day = divmod(rest, 100)
    year, month = divmod(rest, 100)
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None


def _build_fields() -> dict[str, tuple[str, Check]]:
    """Map vendor key -> (canonical key, check) for every scalar data point of /api/v1/data."""
    fields: dict[str, tuple[str, Check]] = {
        "wifi_ssid": ("wifi_ssid", text_value),
        "wifi_strength": ("wifi_strength", percent_number),
        "smr_version": ("dsmr_version", count_number),
        "meter_model": ("meter_model", text_value),
        "unique_id": ("meter_id", smart_meter_id),
        "active_tariff": ("active_tariff", tariff_number),
        "any_power_fail_count": ("any_power_fail_count", count_number),
        "long_power_fail_count": ("long_power_fail_count", count_number),
        "active_power_average_w": ("average_power_w", signed_number),
        "montly_power_peak_w": ("monthly_peak_power_w", signed_number),  # sic, as the API spells it
        "active_liter_lpm": ("water_flow_lpm", unsigned_number),
        "total_liter_m3": ("water_total_m3", unsigned_number),
        "total_liter_offset_m3": ("water_offset_m3", signed_number),
    }
    for direction in ("import", "export"):
        total = f"energy_{direction}_kwh"
        fields[f"total_power_{direction}_kwh"] = (total, unsigned_number)
        for tariff in TARIFFS:
            fields[f"total_power_{direction}_t{tariff}_kwh"] = (
                tariff_key(total, tariff),
                unsigned_number,
            )
    # The device sends "active_" + canonical key, per phase "active_" + phase key.
    fields.update(electrical_fields("active_"))
    return fields


_FIELDS: Final = _build_fields()


# (vendor total, canonical total, canonical T1) folded for single-tariff products
_SINGLE_TARIFF_FOLD: Final = tuple(
    (f"total_power_{d}_kwh", f"energy_{d}_kwh", tariff_key(f"energy_{d}_kwh", 1))
    for d in ("import", "export")
)


_UNITS: Final = {"m3": "m³"}


def parse_data(payload: object, *, product_type: str | None, tz: tzinfo) -> Reading:
    """Normalise a ``/api/v1/data`` payload; ``tz`` is the meter's local time zone."""
    if not isinstance(payload, dict):
        raise InvalidPayload(f"measurement is a JSON {type(payload).__name__}, not an object")
    values: dict[str, Value] = {}
    for name, raw in payload.items():
        field = _FIELDS.get(name)
        if field is not None and (value := field[1](raw)) is not None:
            values[field[0]] = value

    if product_type in SINGLE_TARIFF_PRODUCTS:
        for vendor_total, total, t1 in _SINGLE_TARIFF_FOLD:
            if payload.get(vendor_total) is None and t1 in values:
                values[total] = values.pop(t1)
    if (peak_at := _meter_time(payload.get("montly_power_peak_timestamp"), tz)) is not None:
        values["monthly_peak_at"] = peak_at

    externals: dict[str, ExternalMeter] = {}
    if isinstance(entries := payload.get("external"), list):
        for entry in entries:
            if meter := external_meter(entry, partial(_meter_time, tz=tz)):
                externals[meter.key] = meter
    if "total_gas_m3" in payload and (legacy := _legacy_gas(payload, externals, tz)):
        externals[legacy.key] = legacy
    return Reading(values=values, externals=externals)


def parse_state(payload: dict[str, Any]) -> dict[str, Value]:
    """Normalise a ``/api/v1/state`` payload (the socket's relay, lock and status light)."""
    values: dict[str, Value] = {}
    for vendor, key in (("power_on", "switch_on"), ("switch_lock", "switch_lock")):
        if isinstance(raw := payload.get(vendor), bool):
            values[key] = raw
    if (brightness := in_range(payload.get("brightness"), 0, BRIGHTNESS_MAX)) is not None:
        values["brightness"] = round(brightness * 100 / BRIGHTNESS_MAX)
    return values


def parse_system(payload: dict[str, Any]) -> dict[str, Value]:
    """Normalise a ``/api/v1/system`` payload (whether the device talks to the cloud)."""
    raw = payload.get("cloud_enabled")
    return {"cloud_enabled": raw} if isinstance(raw, bool) else {}


# Longer text is no id at all. Ids up to it are parsed: the sensor platform ignores those longer
# than ``MAX_ID_LENGTH`` and says so in the log.
_MAX_EXTERNAL_ID_TEXT: Final = 1024


def _identifier(raw: object) -> str | None:
    """Return an id as sent: text, or a number (the doc types the gas id as Number)."""
    return vendor_identifier(raw, _MAX_EXTERNAL_ID_TEXT)


def external_meter(
    entry: object, read_time: Callable[[object], datetime | None]
) -> ExternalMeter | None:
    """Return one entry of ``external`` (API v1 and v2); None when it lacks a valid id or type.

    ``read_time`` reads the entry's timestamp (a number in v1, ISO 8601 text in v2).
    """
    if not isinstance(entry, dict):
        return None
    meter_id = _identifier(entry.get("unique_id"))
    kind = vendor_text(entry.get("type"))
    if meter_id is None or kind is None:
        return None
    value = in_range(entry.get("value"), 0, MAX_NUMBER)
    unit = vendor_text(entry.get("unit"))
    return ExternalMeter(
        meter_id=meter_id,
        kind=kind,
        value=None if value is None else float(value),
        unit=None if unit is None else _UNITS.get(unit, unit),
        measured_at=read_time(entry.get("timestamp")),
    )


def _legacy_gas(
    payload: dict[str, Any], externals: dict[str, ExternalMeter], tz: tzinfo
) -> ExternalMeter | None:
    """Return the deprecated gas fields as an external meter, unless ``external`` has it.

    The legacy fields repeat the first gas meter of ``external``: without an id to compare, any
    external gas meter is taken to be that one.
    """
    value = in_range(payload["total_gas_m3"], 0, MAX_NUMBER)
    if value is None:
        return None
    # the doc spells the id both ways
    gas_id = _identifier(payload.get("gas_unique_id")) or _identifier(payload.get("unique_gas_id"))
    for meter in externals.values():
        if meter.kind == "gas_meter" and gas_id in (None, meter.meter_id):
            return None
    return ExternalMeter(
        meter_id=gas_id or LEGACY_GAS_ID,
        kind="gas_meter",
        value=float(value),
        unit="m³",
        measured_at=_meter_time(payload.get("gas_timestamp"), tz),
    )
