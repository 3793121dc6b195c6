"""Diagnostics: the entry, the meters and the source's raw data, with every identifier redacted.

Redaction works on values, not only on key names: a secret or an identifier is replaced wherever
it appears, also where it is used as a key (external meters are keyed by their id). The SNs of
IAMMETER meters are shortened rather than hidden, so that the meters of an account can be told
apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .const import (
    CONF_ACCOUNT_ID,
    CONF_PLACE_ID,
    CONF_REFRESH_TOKEN,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_TOKEN,
    SOURCE_CLOUD,
)
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
        CONF_PLACE_ID,
        "unique_id",
        "meter_id",
        "wifi_ssid",
        "gas_unique_id",
        "unique_gas_id",
        "sn",
        "id",
    }
)


def short_serials(serials: Iterable[str]) -> dict[str, str]:
    """The first 4 characters of each serial and "…" (and its last 2 where that is not unique)."""
    serials = list(serials)
    short = {serial: f"{serial[:4]}…" for serial in serials}
    clashes = Counter(short.values())
    return {
        serial: f"{serial[:4]}…{serial[-2:]}" if clashes[short[serial]] > 1 else short[serial]
        for serial in serials
    }


def _sensitive_values(entry: MeterHubConfigEntry) -> dict[str, str]:
    """Every identifier or secret of the entry and its meters, as text, with its replacement."""
    found: set[str] = {
        str(value)
        for key, value in (*entry.data.items(), *entry.options.items())
        if key in SECRET_KEYS and value
    }
    if entry.unique_id:
        found.add(entry.unique_id)
    coordinator = entry.runtime_data.coordinator
    for serial, meter in coordinator.data.items():
        found.add(serial)
        for external in meter.reading.externals.values():
            found.add(external.meter_id)
        if isinstance(meter_id := meter.reading.values.get("meter_id"), str):
            found.add(meter_id)
        if isinstance(ssid := meter.reading.values.get("wifi_ssid"), str):
            found.add(ssid)
    replacements = {value: REDACTED for value in found if len(value) >= 3}
    if entry.data.get(CONF_SOURCE) == SOURCE_CLOUD:
        replacements.update(short_serials(coordinator.data))
    # Longest first: a value that contains another is replaced as a whole.
    return dict(sorted(replacements.items(), key=lambda item: -len(item[0])))


def redact(data: Any, sensitive: Mapping[str, str]) -> Any:
    """Replace sensitive values and any text containing them, in keys and values."""
    if isinstance(data, dict):
        return {
            redact(key, sensitive): _redact_field(key, value, sensitive)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item, sensitive) for item in data]
    if isinstance(data, str):
        for value, replacement in sensitive.items():
            if value in data:
                data = data.replace(value, replacement)
        return data
    return data


def _redact_field(key: Any, value: Any, sensitive: Mapping[str, str]) -> Any:
    """The value of a field: hidden when its key names a secret, unless it has a replacement."""
    if key not in SECRET_KEYS or not value:
        return redact(value, sensitive)
    if isinstance(value, str) and value in sensitive:
        return sensitive[value]
    return REDACTED


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: MeterHubConfigEntry
) -> dict[str, Any]:
    """Diagnostics of a config entry."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
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
                serial: {
                    "info": asdict(meter.info),
                    # (not ``expected``: the same fixed keys for every meter of a source)
                    "reading": {
                        "values": meter.reading.values,
                        "externals": {
                            key: asdict(external)
                            for key, external in meter.reading.externals.items()
                        },
                    },
                }
                for serial, meter in coordinator.data.items()
            },
            "source": coordinator.diagnostics(),
            **runtime.diagnostics(),
        },
        sensitive,
    )
    return diagnostics
