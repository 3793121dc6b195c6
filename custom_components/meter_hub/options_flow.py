"""Options: polling interval, push (HomeWizard v2), a cloud account's place and local addresses."""

from __future__ import annotations

import re
from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from .api.homewizard.errors import InvalidHost
from .api.homewizard.push import supports_push
from .api.iammeter.local import AuthRequired, IamMeterLocalError, TooManyRequests, WrongMeter
from .compat import vol
from .const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_SCAN_INTERVAL_RANGE_MIN,
    CONF_API_VERSION,
    CONF_PLACE_ID,
    CONF_PRODUCT_TYPE,
    CONF_PUSH,
    CONF_PUSH_INTERVAL_MS,
    CONF_SCAN_INTERVAL,
    CONF_SOURCE,
    CONF_VENDOR,
    IAMMETER_LOCAL_SCAN_INTERVAL,
    LOCAL_SCAN_INTERVAL,
    LOCAL_SCAN_INTERVAL_RANGE,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from .iammeter_link import linked_meters, with_link
from .iammeter_local_coordinator import iammeter_local_client

# Option of a cloud entry: the meter whose local address to set next (a step of its own).
CONF_LOCAL_METER = "local_meter"

# A place id: the cloud's are numbers, IAMMETER's self-hosted server uses GUIDs.
_PLACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _interval_selector(low: int, high: int, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=low, max=high, step=1, mode=NumberSelectorMode.BOX, unit_of_measurement=unit
        )
    )


class MeterHubOptionsFlow(OptionsFlow):
    """Change the polling interval of an entry (and a cloud meter's local address)."""

    _options: dict[str, Any]
    _local_meter: str

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
            if self._pushes():
                options[CONF_PUSH] = bool(user_input.get(CONF_PUSH, True))
                # Never slower than the polls that stand in for the socket.
                options[CONF_PUSH_INTERVAL_MS] = min(
                    int(user_input.get(CONF_PUSH_INTERVAL_MS, 0)), seconds * 1000
                )
            place = str(user_input.get(CONF_PLACE_ID) or "").strip()
            options.pop(CONF_PLACE_ID, None)
            if place and not _PLACE_ID.fullmatch(place):
                errors[CONF_PLACE_ID] = "invalid_place_id"
            elif place and cloud:
                options[CONF_PLACE_ID] = place
            if not errors and user_input.get(CONF_LOCAL_METER):
                self._options, self._local_meter = options, user_input[CONF_LOCAL_METER]
                return await self.async_step_local_address()
            if not errors:
                return self.async_create_entry(data=options)
        current = self.config_entry.options.get(CONF_SCAN_INTERVAL, default) // scale
        fields: dict[vol.Marker, Any] = {
            vol.Required(CONF_SCAN_INTERVAL, default=current): _interval_selector(low, high, unit)
        }
        if self._pushes():
            options_now = self.config_entry.options
            fields[vol.Required(CONF_PUSH, default=options_now.get(CONF_PUSH, True))] = (
                BooleanSelector()
            )
            fields[
                vol.Required(
                    CONF_PUSH_INTERVAL_MS, default=options_now.get(CONF_PUSH_INTERVAL_MS, 0)
                )
            ] = _interval_selector(0, high * 1000, "ms")
        if cloud:
            # Optional: the energy of a place (IAMMETER web: My Places -> Edit) as statistics.
            place_now = self.config_entry.options.get(CONF_PLACE_ID, "")
            fields[vol.Optional(CONF_PLACE_ID, description={"suggested_value": place_now})] = (
                TextSelector()
            )
            if meters := self._account_meters():
                fields[vol.Optional(CONF_LOCAL_METER)] = SelectSelector(
                    SelectSelectorConfig(options=meters, mode=SelectSelectorMode.DROPDOWN)
                )
        return self.async_show_form(step_id="init", data_schema=vol.Schema(fields), errors=errors)

    def _account_meters(self) -> list[SelectOptionDict]:
        """The meters of a loaded cloud entry, each with its local address if it has one."""
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return []
        links = linked_meters(entry)
        return [
            SelectOptionDict(
                value=serial,
                label=f"{serial} ({links[serial][CONF_HOST]})" if serial in links else serial,
            )
            for serial in sorted(entry.runtime_data.coordinator.data)
        ]

    async def async_step_local_address(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The local address of a meter of the account (empty: none, the cloud's values only)."""
        serial = self._local_meter
        known = linked_meters(self.config_entry).get(serial, {})
        errors: dict[str, str] = {}
        if user_input is not None:
            host = str(user_input.get(CONF_HOST) or "").strip()
            link = None
            if host:
                link = {**known, CONF_HOST: host}
                errors = await self._async_check_address(serial, link)
            if not errors:
                return self.async_create_entry(data=with_link(self._options, serial, link))
        suggested = (user_input or {}).get(CONF_HOST, known.get(CONF_HOST, ""))
        return self.async_show_form(
            step_id="local_address",
            data_schema=vol.Schema(
                {
                    vol.Optional(
                        CONF_HOST, description={"suggested_value": suggested}
                    ): TextSelector()
                }
            ),
            description_placeholders={"serial": serial},
            errors=errors,
        )

    async def _async_check_address(self, serial: str, link: dict[str, str]) -> dict[str, str]:
        """Read the meter at ``link``'s address (the errors of the form; none: it is there)."""
        try:
            client = iammeter_local_client(self.hass, link[CONF_HOST], link)
            await client.monitor(serial)
        except InvalidHost:
            return {CONF_HOST: "invalid_host"}
        except WrongMeter:
            return {CONF_HOST: "iammeter_wrong_meter"}
        except (AuthRequired, TooManyRequests):
            return {"base": "iammeter_link_auth"}
        except IamMeterLocalError:
            return {"base": "cannot_connect"}
        link[CONF_HOST] = client.host
        return {}

    def _pushes(self) -> bool:
        """Whether the entry's device can push (a HomeWizard v2 device with a WebSocket)."""
        data = self.config_entry.data
        return data.get(CONF_API_VERSION) == 2 and supports_push(data.get(CONF_PRODUCT_TYPE, ""))
