"""The three answers of the local API v2 turned into the canonical keys of ``api/model.py``.

``measurement``, ``system`` and ``batteries``: the same key as in API v1 wherever the quantity
is the same, so an entity keeps its unique id when its device moves from v1 to v2.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import partial
import re
from typing import Any, Final

from custom_components.meter_hub.api.model import (
    BATTERY_MODES,
    TARIFFS,
    ExternalMeter,
    Reading,
    Value,
    tariff_key,
)
from custom_components.meter_hub.api.vendor_values import (
    Check,
    count_number,
    electrical_fields,
    percent_number,
    signed_number,
    smart_meter_id,
    switch_state,
    tariff_number,
    text_value,
    unsigned_number,
)

from .errors import InvalidPayload
from .parser import external_meter

# YYYY-MM-DDTHH:mm:ss in the meter's local time, as the vendor documents it.
_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _build_measurement_fields() -> dict[str, tuple[str, Check]]:
    """Map vendor key -> (canonical key, check) for every number and text of /api/measurement."""
    fields: dict[str, tuple[str, Check]] = {
        "unique_id": ("meter_id", smart_meter_id),
        "protocol_version": ("dsmr_version", count_number),
        "meter_model": ("meter_model", text_value),
        "tariff": ("active_tariff", tariff_number),
        "any_power_fail_count": ("any_power_fail_count", count_number),
        "long_power_fail_count": ("long_power_fail_count", count_number),
        "average_power_15m_w": ("average_power_w", signed_number),
        "monthly_power_peak_w": ("monthly_peak_power_w", signed_number),
        "state_of_charge_pct": ("state_of_charge_pct", percent_number),
        "cycles": ("battery_cycles", unsigned_number),
    }
    # The other names are the canonical keys themselves.
    for direction in ("import", "export"):
        total = f"energy_{direction}_kwh"
        for key in (total, *(tariff_key(total, tariff) for tariff in TARIFFS)):
            fields[key] = (key, unsigned_number)
    fields.update(electrical_fields(""))
    return fields


_MEASUREMENT_FIELDS: Final = _build_measurement_fields()


_MEASUREMENT_TIMES: Final = {
    "timestamp": "smart_meter_measured_at",
    "monthly_power_peak_timestamp": "monthly_peak_at",
}


_SYSTEM_FIELDS: Final[dict[str, tuple[str, Check]]] = {
    "wifi_ssid": ("wifi_ssid", text_value),
    "wifi_rssi_db": ("wifi_rssi_db", signed_number),
    "uptime_s": ("uptime_s", unsigned_number),
    "cloud_enabled": ("cloud_enabled", switch_state),
    # the status light: the key of API v1's (the socket's) status light
    "status_led_brightness_pct": ("brightness", percent_number),
    "api_v1_enabled": ("api_v1_enabled", switch_state),
}


_BATTERIES_FIELDS: Final[dict[str, tuple[str, Check]]] = {
    "mode": ("battery_mode", lambda raw: raw if raw in BATTERY_MODES else None),
    "charge_to_full": ("battery_charge_to_full", switch_state),
    "battery_count": ("battery_count", count_number),
    "power_w": ("battery_group_power_w", signed_number),
    "target_power_w": ("battery_group_target_power_w", signed_number),
    "max_consumption_w": ("battery_group_max_consumption_w", unsigned_number),
    "max_production_w": ("battery_group_max_production_w", unsigned_number),
}


# The battery group's permissions (``batteries``) and the canonical key of each.
PERMISSIONS: Final = {
    "charge_allowed": "battery_charge_allowed",
    "discharge_allowed": "battery_discharge_allowed",
}


def json_object(payload: object, what: str) -> dict[str, Any]:
    """``payload`` if it is a JSON object (``what`` names it in the error)."""
    if not isinstance(payload, dict):
        raise InvalidPayload(f"{what} is a JSON {type(payload).__name__}, not an object")
    return payload


def _values(payload: dict[str, Any], fields: dict[str, tuple[str, Check]]) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for name, raw in payload.items():
        field = fields.get(name)
        if field is not None and (value := field[1](raw)) is not None:
            values[field[0]] = value
    return values


def iso_time(raw: object, tz: tzinfo) -> datetime | None:
    """A ``YYYY-MM-DDTHH:mm:ss`` timestamp of the meter's clock (in ``tz``) as an aware datetime."""
    if not isinstance(raw, str) or not _TIMESTAMP.fullmatch(raw):
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=tz)
    except ValueError:
        return None


def parse_measurement(payload: object, *, tz: tzinfo) -> Reading:
    """Normalise an ``/api/measurement`` answer; ``tz`` is the meter's local time zone."""
    payload = json_object(payload, "measurement")
    values = _values(payload, _MEASUREMENT_FIELDS)
    for name, key in _MEASUREMENT_TIMES.items():
        if (at := iso_time(payload.get(name), tz)) is not None:
            values[key] = at
    externals: dict[str, ExternalMeter] = {}
    if isinstance(entries := payload.get("external"), list):
        read_time = partial(iso_time, tz=tz)
        for entry in entries:
            if meter := external_meter(entry, read_time):
                externals[meter.key] = meter
    return Reading(values=values, externals=externals)


def parse_system(payload: object) -> dict[str, Value]:
    """The values of an ``/api/system`` answer."""
    return _values(json_object(payload, "system"), _SYSTEM_FIELDS)


def parse_batteries(payload: object) -> dict[str, Value]:
    """The values of an ``/api/batteries`` answer (the batteries a meter controls)."""
    payload = json_object(payload, "batteries")
    values = _values(payload, _BATTERIES_FIELDS)
    permissions = payload.get("permissions")
    if isinstance(permissions, list):
        for permission, key in PERMISSIONS.items():
            values[key] = permission in permissions
    return values
