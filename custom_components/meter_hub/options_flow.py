"""Options: how often to poll (and, for a cloud account, which place's energy history to import)."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.helpers.selector import NumberSelector, NumberSelectorConfig, NumberSelectorMode
import voluptuous as vol

from .const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_SCAN_INTERVAL_RANGE_MIN,
    CONF_SCAN_INTERVAL,
    CONF_SOURCE,
    LOCAL_SCAN_INTERVAL,
    LOCAL_SCAN_INTERVAL_RANGE,
    SOURCE_LOCAL,
)


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
            default = LOCAL_SCAN_INTERVAL.total_seconds()
            # Stored in seconds; shown in seconds.
            scale, unit = 1, "s"
        else:
            low, high = CLOUD_SCAN_INTERVAL_RANGE_MIN
            default = CLOUD_SCAN_INTERVAL.total_seconds()
            # Stored in seconds; shown in minutes (the cloud allows one poll per 5 minutes).
            scale, unit = 60, "min"
        if user_input is not None:
            seconds = int(user_input[CONF_SCAN_INTERVAL]) * scale
            return self.async_create_entry(
                data={**self.config_entry.options, CONF_SCAN_INTERVAL: seconds}
            )
        current = self.config_entry.options.get(CONF_SCAN_INTERVAL, default) // scale
        schema = vol.Schema(
            {vol.Required(CONF_SCAN_INTERVAL, default=current): _interval_selector(low, high, unit)}
        )
        return self.async_show_form(step_id="init", data_schema=schema)
