"""Config flow steps of a HomeWizard device: manual host, zeroconf, reauth, reconfigure."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from .api.homewizard import (
    ApiDisabled,
    CannotConnect,
    HomeWizardClient,
    HomeWizardDevice,
    InvalidHost,
    InvalidPayload,
    NotHomeWizard,
    normalise_host,
)
from .const import CONF_PRODUCT_TYPE, CONF_SERIAL, CONF_SOURCE, LOGGER, SOURCE_LOCAL

HOST_SCHEMA = vol.Schema({vol.Required(CONF_HOST): TextSelector()})


class LocalFlow(ConfigFlow):
    """The HomeWizard half of the config flow."""

    _discovered: HomeWizardDevice
    _discovered_host: str

    async def _async_probe(self, raw_host: str) -> tuple[str, HomeWizardDevice | None, str | None]:
        """Check that ``raw_host`` is a HomeWizard device with its local API on.

        Returns the normalised host, the device, and an error key when it is not usable.
        """
        try:
            host = normalise_host(raw_host)
        except InvalidHost:
            return raw_host, None, "invalid_host"
        client = HomeWizardClient(async_get_clientsession(self.hass), host)
        try:
            device = await client.device()
            await client.data()
        except ApiDisabled:
            return host, None, "api_not_enabled"
        except (NotHomeWizard, InvalidPayload):
            # /api/v1/data that is not a measurement is no HomeWizard API v1 either
            return host, None, "not_homewizard"
        except CannotConnect:
            return host, None, "cannot_connect"
        except Exception:  # noqa: BLE001 - the form must say "unknown", never crash
            LOGGER.exception("Unexpected error while probing %s", host)
            return host, None, "unknown"
        return host, device, None

    def _async_abort_wrong_device(self, device: HomeWizardDevice) -> ConfigFlowResult:
        """Another device than the expected one answers at the address."""
        return self.async_abort(
            reason="wrong_device", description_placeholders={"serial": device.serial}
        )

    def _async_create_local_entry(self, host: str, device: HomeWizardDevice) -> ConfigFlowResult:
        return self.async_create_entry(
            title=device.product_name or device.model_name,
            data={
                CONF_SOURCE: SOURCE_LOCAL,
                CONF_HOST: host,
                CONF_SERIAL: device.serial,
                CONF_PRODUCT_TYPE: device.product_type,
            },
        )

    async def _async_local_device_found(
        self, host: str, device: HomeWizardDevice
    ) -> ConfigFlowResult:
        """The device at the host the user entered answers API v1: add it (v2: see pairing)."""
        return self._async_create_local_entry(host, device)

    async def async_step_local(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Add a HomeWizard device by its IP address or host name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host, device, error = await self._async_probe(user_input[CONF_HOST])
            if device is not None:
                await self.async_set_unique_id(device.serial, raise_on_progress=False)
                self._abort_if_unique_id_configured(updates={CONF_HOST: host})
                return await self._async_local_device_found(host, device)
            errors["base"] = error or "unknown"
        return self.async_show_form(
            step_id="local",
            data_schema=self.add_suggested_values_to_schema(HOST_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A HomeWizard device announced itself on the network."""
        properties = discovery_info.properties
        serial = properties.get("serial")
        product_type = properties.get("product_type")
        if not serial or not product_type:
            return self.async_abort(reason="invalid_discovery_parameters")
        host = discovery_info.host
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        if discovery_info.port not in (None, 80):
            host = f"{host}:{discovery_info.port}"
        await self.async_set_unique_id(serial)
        self._abort_if_unique_id_configured(updates={CONF_HOST: host})
        self._discovered_host = host
        self._discovered = HomeWizardDevice(
            product_type=product_type,
            product_name=properties.get("product_name"),
            serial=serial,
            firmware_version=None,
            api_version="v1",
            host=host,
        )
        self.context["title_placeholders"] = {
            "name": self._discovered.model_name,
            "serial": serial,
        }
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding a discovered device; its local API must be on."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host, device, error = await self._async_probe(self._discovered_host)
            if device is not None:
                if device.serial != self._discovered.serial:
                    return self._async_abort_wrong_device(device)
                return self._async_create_local_entry(host, device)
            errors["base"] = error or "unknown"
        self._set_confirm_only()
        return self.async_show_form(
            step_id="discovery_confirm",
            description_placeholders={
                "product_name": self._discovered.model_name,
                "product_type": self._discovered.product_type,
                "serial": self._discovered.serial,
                "host": self._discovered_host,
            },
            errors=errors,
        )

    async def async_step_reauth_enable_api(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The device's local API was switched off: tell the user how to switch it on."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            _, device, error = await self._async_probe(entry.data[CONF_HOST])
            if device is not None:
                if device.serial != entry.unique_id:
                    return self._async_abort_wrong_device(device)
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_abort(reason="reauth_enable_api_successful")
            errors["base"] = error or "unknown"
        return self.async_show_form(
            step_id="reauth_enable_api",
            description_placeholders={"name": entry.title, "host": entry.data[CONF_HOST]},
            errors=errors,
        )

    async def async_step_reconfigure_local(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the host of a HomeWizard device; it must still be the same device."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host, device, error = await self._async_probe(user_input[CONF_HOST])
            if device is not None:
                if device.serial != entry.unique_id:
                    return self._async_abort_wrong_device(device)
                # (not async_update_and_abort: Home Assistant 2025.4 has it on options flows only)
                # The entry's update listener reloads it for the new host.
                self.hass.config_entries.async_update_entry(
                    entry, data={**entry.data, CONF_HOST: host}
                )
                return self.async_abort(reason="reconfigure_successful")
            errors["base"] = error or "unknown"
        return self.async_show_form(
            step_id="reconfigure_local",
            data_schema=self.add_suggested_values_to_schema(
                HOST_SCHEMA, user_input or {CONF_HOST: entry.data[CONF_HOST]}
            ),
            description_placeholders={"name": entry.title},
            errors=errors,
        )
