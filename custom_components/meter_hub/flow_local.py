"""Config flow steps of a HomeWizard device: manual host, zeroconf, reauth, reconfigure."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api.homewizard.client import HomeWizardClient
from .api.homewizard.errors import (
    ApiDisabled,
    CannotConnect,
    HomeWizardError,
    InvalidHost,
    InvalidPayload,
    NotHomeWizard,
    WrongDevice,
)
from .api.homewizard.hosts import normalise_host
from .api.homewizard.models import HomeWizardDevice
from .api.model import Reading
from .compat import vol
from .const import CONF_PRODUCT_TYPE, CONF_SERIAL, CONF_SOURCE, LOGGER, SOURCE_LOCAL
from .entry_update import async_update_entry_data
from .flow_error import FlowError
from .local_coordinator import async_entry_client

HOST_SCHEMA = vol.Schema({vol.Required(CONF_HOST): TextSelector()})


def _counters(reading: Reading) -> dict[str, float]:
    """The cumulative counters of a reading (energy in kWh, water in m³): they never go down."""
    return {
        key: float(value)
        for key, value in reading.values.items()
        if (key.startswith("energy_") or key == "water_total_m3") and isinstance(value, int | float)
    }


def implausible(reading: Reading, last: Reading | None) -> str | None:
    """Why ``reading`` cannot be the next reading of the meter that read ``last`` (None: it can).

    The same meter at a new address counts on: none of its counters may be lower than the last
    reading. (How far a counter may rise is the counter guard's to judge: after a move the
    entities are the same, and the guard holds a rise the meter cannot have measured.)
    """
    if not reading.values:
        return "no measurement"
    if last is None:
        return None
    before = _counters(last)
    for key, value in _counters(reading).items():
        if key in before and value < before[key]:
            return f"{key} is {value}, lower than the last reading's {before[key]}"
    return None


def last_reading(entry: ConfigEntry, serial: str) -> Reading | None:
    """The last reading of meter ``serial`` in ``entry`` while it runs (None: none known)."""
    if entry.state is not ConfigEntryState.LOADED or not entry.runtime_data.coordinator.data:
        return None
    meter = entry.runtime_data.coordinator.data.get(serial)
    return meter.reading if meter is not None else None


def valid_host(raw_host: str) -> str:
    """``raw_host`` normalised (see ``normalise_host``), or the form's ``invalid_host`` error."""
    try:
        return normalise_host(raw_host)
    except InvalidHost as err:
        raise FlowError("invalid_host") from err


def abort_if_other_device(entry: ConfigEntry, serial: str) -> None:
    """Abort the flow when another meter (``serial``) than the entry's answers."""
    if serial != entry.unique_id:
        raise AbortFlow("wrong_device", {"serial": serial})


def discovered_host(discovery_info: ZeroconfServiceInfo, *, default_port: int) -> str:
    """``host`` or ``host:port`` (IPv6 in brackets) of a discovered service."""
    host = discovery_info.host
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if discovery_info.port not in (None, default_port):
        host = f"{host}:{discovery_info.port}"
    return host


class LocalFlow(ConfigFlow):
    """The HomeWizard half of the config flow."""

    _discovered: HomeWizardDevice
    _discovered_host: str

    async def _async_probe(self, host: str) -> HomeWizardDevice:
        """The HomeWizard device at ``host`` (normalised), with its local API on."""
        client = HomeWizardClient(async_get_clientsession(self.hass), host)
        try:
            device = await client.device()
            await client.data()
        except ApiDisabled as err:
            raise FlowError("api_not_enabled") from err
        except (NotHomeWizard, InvalidPayload) as err:
            # /api/v1/data that is not a measurement is no HomeWizard API v1 either
            raise FlowError("not_homewizard") from err
        except CannotConnect as err:
            raise FlowError("cannot_connect") from err
        except Exception as err:
            LOGGER.exception("Unexpected error while probing %s", host)
            raise FlowError("unknown") from err  # the form must say "unknown", never crash
        return device

    async def _async_probe_entry_device(self, entry: ConfigEntry, host: str) -> None:
        """Probe ``host``: the entry's own device must answer there (else the flow aborts)."""
        device = await self._async_probe(host)
        abort_if_other_device(entry, device.serial)

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

    @abstractmethod
    async def _async_not_homewizard(self, host: str, error: FlowError) -> ConfigFlowResult:
        """No HomeWizard device answers at ``host``: another vendor's step, or raise ``error``."""

    async def _async_api_v1_disabled(self, host: str, error: FlowError) -> ConfigFlowResult:
        """The device at ``host`` has API v1 switched off: the step that reaches it, or raise."""
        raise error

    async def async_step_local(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Add a HomeWizard device by its IP address or host name."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                return await self._async_add_local_device(user_input[CONF_HOST])
            except FlowError as err:
                errors["base"] = err.key
        return self.async_show_form(
            step_id="local",
            data_schema=self.add_suggested_values_to_schema(HOST_SCHEMA, user_input),
            errors=errors,
        )

    async def _async_add_local_device(self, raw_host: str) -> ConfigFlowResult:
        """Add the device at ``raw_host``, or move its entry there."""
        host = valid_host(raw_host)
        try:
            device = await self._async_probe(host)
        except FlowError as err:
            if err.key == "api_not_enabled":
                return await self._async_api_v1_disabled(host, err)
            if err.key not in ("not_homewizard", "cannot_connect"):
                raise
            return await self._async_not_homewizard(host, err)
        entry = await self.async_set_unique_id(device.serial, raise_on_progress=False)
        if entry is not None and entry.source != SOURCE_IGNORE:
            # the user pointed at it: the probe proved it is the device
            async_update_entry_data(self.hass, entry, {CONF_HOST: host})
            return self.async_abort(reason="already_configured")
        return await self._async_local_device_found(host, device)

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A HomeWizard device announced itself on the network."""
        properties = discovery_info.properties
        serial = properties.get("serial")
        product_type = properties.get("product_type")
        if not serial or not product_type:
            return self.async_abort(reason="invalid_discovery_parameters")
        host = discovered_host(discovery_info, default_port=80)
        if entry := await self.async_set_unique_id(serial):
            return await self._async_known_device_announced(entry, host)
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

    async def _async_known_device_announced(
        self, entry: ConfigEntry, host: str
    ) -> ConfigFlowResult:
        """A configured device's serial is announced: move the entry only to a proven address.

        The serial is in the device's own mDNS record, so anyone on the network can announce it.
        The new address must answer as that device (``/api`` serial) with a plausible reading
        before the entry moves; an announcement that does not prove it changes nothing and
        nothing it serves is ever published.
        """
        if entry.source == SOURCE_IGNORE or entry.data.get(CONF_HOST) == host:
            if entry.state is ConfigEntryState.SETUP_RETRY:
                # it is on the network: try now rather than at the next retry
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_abort(reason="already_configured")
        if (problem := await self._async_verify_address(entry, host)) is not None:
            # Debug only: mDNS repeats an announcement, a spoofer could fill the log with it;
            # nothing changes and nothing of the announcer is published.
            LOGGER.debug(
                "%s was announced at %s, which did not prove to be it (%s); it stays at %s",
                entry.title,
                host,
                problem,
                entry.data[CONF_HOST],
            )
            return self.async_abort(
                reason="unverified_address",
                description_placeholders={"name": entry.title, "host": host},
            )
        LOGGER.info("%s moved from %s to %s", entry.title, entry.data[CONF_HOST], host)
        async_update_entry_data(self.hass, entry, {CONF_HOST: host})
        return self.async_abort(reason="already_configured")

    async def _async_verify_address(self, entry: ConfigEntry, host: str) -> str | None:
        """Why ``host`` is not the device of ``entry`` (None: it is, with a plausible reading)."""
        client = await async_entry_client(self.hass, entry, host)
        try:
            device, reading = await client.measurement(entry.data[CONF_SERIAL])
        except WrongDevice as err:
            return f"serial {err.serial[:32]!r}"
        except HomeWizardError as err:
            return str(err)
        if device.product_type != entry.data[CONF_PRODUCT_TYPE]:
            return f"product type {device.product_type[:32]!r}"
        return implausible(reading, last_reading(entry, device.serial))

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding a discovered device; its local API must be on."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                host = valid_host(self._discovered_host)
                device = await self._async_probe(host)
            except FlowError as err:
                errors["base"] = err.key
            else:
                if device.serial != self._discovered.serial:
                    raise AbortFlow("wrong_device", {"serial": device.serial})
                return self._async_create_local_entry(host, device)
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
            try:
                await self._async_probe_entry_device(entry, valid_host(entry.data[CONF_HOST]))
            except FlowError as err:
                errors["base"] = err.key
            else:
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_abort(reason="reauth_enable_api_successful")
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
            try:
                host = valid_host(user_input[CONF_HOST])
                await self._async_probe_entry_device(entry, host)
            except FlowError as err:
                errors["base"] = err.key
            else:
                async_update_entry_data(self.hass, entry, {CONF_HOST: host})
                return self.async_abort(reason="reconfigure_successful")
        return self._async_show_address_form("reconfigure_local", entry, user_input, errors)

    def _async_show_address_form(
        self,
        step_id: str,
        entry: ConfigEntry,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
    ) -> ConfigFlowResult:
        """The form of a device's new address (reconfigure), at first with the entry's own."""
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                HOST_SCHEMA, user_input or {CONF_HOST: entry.data[CONF_HOST]}
            ),
            description_placeholders={"name": entry.title},
            errors=errors,
        )
