"""Config flow: one menu, two sources (an IAMMETER cloud account, a HomeWizard device)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .const import (
    CONF_API_VERSION,
    CONF_SOURCE,
    CONF_VENDOR,
    DOMAIN,
    SOURCE_CLOUD,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from .coordinator import MeterHubConfigEntry
from .flow_cloud import CloudFlow
from .flow_iammeter_local import IamMeterLocalFlow
from .flow_pairing import ZEROCONF_V2, PairingFlow
from .options_flow import MeterHubOptionsFlow


class MeterHubConfigFlow(PairingFlow, IamMeterLocalFlow, CloudFlow, domain=DOMAIN):
    """Set up Meter Hub: the user picks a source, discovery leads straight to a device."""

    # 2: unique ids and device identifiers of external meters scoped to their parent meter
    # (``async_migrate_entry``); an older release refuses to load such an entry.
    VERSION = 2

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask which kind of meter to add."""
        return self.async_show_menu(step_id="user", menu_options=[SOURCE_CLOUD, SOURCE_LOCAL])

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A HomeWizard device announced its API v2 (HTTPS) or v1 (HTTP)."""
        if discovery_info.type == ZEROCONF_V2:
            return await self.async_step_zeroconf_v2(discovery_info)
        return await super().async_step_zeroconf(discovery_info)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start the re-authentication of the entry's source."""
        if entry_data.get(CONF_VENDOR) == VENDOR_IAMMETER:
            return await self.async_step_reauth_iammeter()
        if entry_data.get(CONF_API_VERSION) == 2:
            return await self.async_step_reauth_pair()
        if entry_data[CONF_SOURCE] == SOURCE_LOCAL:
            return await self.async_step_reauth_enable_api()
        return await self.async_step_reauth_confirm()

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change how an existing entry is reached."""
        data = self._get_reconfigure_entry().data
        if data.get(CONF_VENDOR) == VENDOR_IAMMETER:
            return await self.async_step_reconfigure_iammeter()
        if data[CONF_SOURCE] == SOURCE_LOCAL:
            return await self.async_step_reconfigure_local()
        return await self.async_step_reconfigure_cloud()

    @staticmethod
    def async_get_options_flow(config_entry: MeterHubConfigEntry) -> OptionsFlow:
        """Options: the polling interval (and, for cloud accounts, the place id)."""
        return MeterHubOptionsFlow()
