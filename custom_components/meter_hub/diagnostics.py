"""Diagnostics: the entry, the meters and the source's raw data, with every identifier redacted.

Redaction works on values, not only on key names: a secret or an identifier is replaced wherever
it appears, also where it is used as a key (external meters are keyed by their id).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .const import CONF_ACCOUNT_ID, CONF_REFRESH_TOKEN, CONF_SERIAL, CONF_TOKEN
from .coordinator import MeterHubConfigEntry

REDACTED = "**REDACTED**"
SECRET_KEYS = frozenset(
    {
        CONF_PASSWORD,
        CONF_TOKEN,
        CONF_REFRESH_TOKEN,
        "refreshToken",
        CONF_USERNAME,
        CONF_ACCOUNT_ID,
        CONF_HOST,
        CONF_SERIAL,
        "unique_id",
        "meter_id",
        "wifi_ssid",
        "gas_unique_id",
        "unique_gas_id",
        "sn",
        "id",
    }
)


def _sensitive_values(entry: MeterHubConfigEntry) -> set[str]:
    """Every identifier or secret of the entry and its meters, as text."""
    found: set[str] = {
        str(value) for key, value in entry.data.items() if key in SECRET_KEYS and value
    }
    if entry.unique_id:
        found.add(entry.unique_id)
    for serial, meter in entry.runtime_data.data.items():
        found.add(serial)
        for external in meter.reading.externals.values():
            found.add(external.meter_id)
        if isinstance(meter_id := meter.reading.values.get("meter_id"), str):
            found.add(meter_id)
        if isinstance(ssid := meter.reading.values.get("wifi_ssid"), str):
            found.add(ssid)
    return {value for value in found if len(value) >= 3}


def redact(data: Any, sensitive: set[str]) -> Any:
    """Replace sensitive values and any text containing them, in keys and values."""
    if isinstance(data, dict):
        return {
            redact(key, sensitive): REDACTED
            if key in SECRET_KEYS and value
            else redact(value, sensitive)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item, sensitive) for item in data]
    if isinstance(data, str):
        for value in sensitive:
            if value in data:
                data = data.replace(value, REDACTED)
        return data
    return data


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: MeterHubConfigEntry
) -> dict[str, Any]:
    """Diagnostics of a config entry."""
    coordinator = entry.runtime_data
    sensitive = _sensitive_values(entry)
    diagnostics: dict[str, Any] = redact(
        {
            "entry": {
                "title": entry.title,
                "unique_id": entry.unique_id,
                "data": dict(entry.data),
                "options": dict(entry.options),
            },
            "last_update_success": coordinator.last_update_success,
            "meters": {
                serial: {"info": asdict(meter.info), "reading": asdict(meter.reading)}
                for serial, meter in coordinator.data.items()
            },
            "source": coordinator.diagnostics(),
        },
        sensitive,
    )
    return diagnostics
