"""Options: how often to poll (and, for a cloud account, which place's energy history to import)."""

from __future__ import annotations

import re
from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
)

from .compat import vol
from .const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_SCAN_INTERVAL_RANGE_MIN,
    CONF_PLACE_ID,
    CONF_SCAN_INTERVAL,
    CONF_SOURCE,
    CONF_VENDOR,
    IAMMETER_LOCAL_SCAN_INTERVAL,
    LOCAL_SCAN_INTERVAL,
    LOCAL_SCAN_INTERVAL_RANGE,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)

# A place id: the cloud's are numbers, IAMMETER's self-hosted server uses GUIDs.
_PLACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _interval_selector(low: int, high: int, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=low, max=high, step=1, mode=NumberSelectorMode.BOX, unit_of_measurement=unit
        )
    )


class MeterHubOptionsFlow(OptionsFlow):
    """Change the polling interval of an entry."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options of the entry's source."""
        if self.config_entry.data[CONF_SOURCE] == SOURCE_LOCAL:
            low, high = LOCAL_SCAN_INTERVAL_RANGE
            default = (
                IAMMETER_LOCAL_SCAN_INTERVAL
                if self.config_entry.data.get(CONF_VENDOR) == VENDOR_IAMMETER
                else LOCAL_SCAN_INTERVAL
            ).total_seconds()
            # Stored in seconds; shown in seconds.
            scale, unit = 1, "s"
        else:
            low, high = CLOUD_SCAN_INTERVAL_RANGE_MIN
            default = CLOUD_SCAN_INTERVAL.total_seconds()
            # Stored in seconds; shown in minutes (the cloud allows one poll per 5 minutes).
            scale, unit = 60, "min"
        cloud = self.config_entry.data[CONF_SOURCE] != SOURCE_LOCAL
        errors: dict[str, str] = {}
        if user_input is not None:
            seconds = int(user_input[CONF_SCAN_INTERVAL]) * scale
            options = {**self.config_entry.options, CONF_SCAN_INTERVAL: seconds}
            place = str(user_input.get(CONF_PLACE_ID) or "").strip()
            options.pop(CONF_PLACE_ID, None)
            if place and not _PLACE_ID.fullmatch(place):
                errors[CONF_PLACE_ID] = "invalid_place_id"
            elif place and cloud:
                options[CONF_PLACE_ID] = place
            if not errors:
                return self.async_create_entry(data=options)
        current = self.config_entry.options.get(CONF_SCAN_INTERVAL, default) // scale
        fields: dict[vol.Marker, Any] = {
            vol.Required(CONF_SCAN_INTERVAL, default=current): _interval_selector(low, high, unit)
        }
        if cloud:
            # Optional: the energy of a place (IAMMETER web: My Places -> Edit) as statistics.
            place_now = self.config_entry.options.get(CONF_PLACE_ID, "")
            fields[vol.Optional(CONF_PLACE_ID, description={"suggested_value": place_now})] = (
                TextSelector()
            )
        return self.async_show_form(step_id="init", data_schema=vol.Schema(fields), errors=errors)
