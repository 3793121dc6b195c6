"""Config flow steps of an IAMMETER meter on the local network.

The local step takes one address: when no HomeWizard device answers there, an IAMMETER meter
may. A meter that asks for its Admin Security credentials gets a form (and a reauth when they
change); its 429 is obeyed, the client sends nothing before its ``Retry-After`` has passed.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_IGNORE, ConfigEntry, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from yarl import URL

from .api.homewizard.errors import InvalidHost
from .api.iammeter import MeterShape
from .api.iammeter.local import (
    AuthRequired,
    CannotConnect,
    Credentials,
    IamMeterLocalClient,
    LocalMeter,
    NoSerial,
    NotIamMeter,
    NotReady,
    TooManyRequests,
)
from .compat import vol
from .const import (
    CONF_NET_METERING,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_VENDOR,
    LOGGER,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from .entry_update import async_update_entry_data
from .flow_error import FlowError
from .flow_local import LocalFlow, abort_if_other_device, implausible, last_reading, valid_host
from .iammeter_link import cloud_entry_of, linked_meters, with_link
from .iammeter_local_coordinator import iammeter_local_client

# Admin Security has one user; the vendor's tools and clients call it "admin".
DEFAULT_USERNAME = "admin"
CREDENTIALS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_USERNAME, default=DEFAULT_USERNAME): TextSelector(),
        vol.Required(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)


class IamMeterLocalFlow(LocalFlow):
    """The IAMMETER half of the local device step, and its credentials and reauth steps."""

    _iammeter_client: IamMeterLocalClient
    _iammeter_meter: LocalMeter
    _link_target: ConfigEntry

    async def _async_not_homewizard(self, host: str, error: FlowError) -> ConfigFlowResult:
        """No HomeWizard device at ``host`` (``error``): add the IAMMETER meter that answers."""
        self._iammeter_client = iammeter_local_client(self.hass, host, {})
        try:
            meter = await self._async_read_iammeter()
        except NotIamMeter:
            raise error from None
        except FlowError as err:
            if err.key != "invalid_auth":
                raise
            return await self.async_step_iammeter_auth()
        return await self._async_create_iammeter_entry(meter)

    async def _async_read_iammeter(self) -> LocalMeter:
        """The meter the flow's client reads (``NotIamMeter``: something else answers)."""
        try:
            return await self._iammeter_client.monitor()
        except AuthRequired as err:
            raise FlowError("invalid_auth") from err
        except NotReady as err:
            raise FlowError("iammeter_not_ready") from err
        except TooManyRequests as err:
            raise FlowError("iammeter_rate_limited") from err
        except NoSerial as err:
            raise FlowError("iammeter_no_serial") from err
        except CannotConnect as err:
            raise FlowError("cannot_connect") from err

    async def _async_create_iammeter_entry(self, meter: LocalMeter) -> ConfigFlowResult:
        """Add the meter, unless it has an entry (moved there) or its cloud account has it."""
        if (entry := await self.async_set_unique_id(meter.serial, raise_on_progress=False)) and (
            entry.source == SOURCE_IGNORE
        ):
            return self.async_abort(reason="already_configured")
        client = self._iammeter_client
        credentials = self._iammeter_link()
        del credentials[CONF_HOST]
        for entry in self._async_current_entries(include_ignore=False):
            if entry.data.get(CONF_VENDOR) == VENDOR_IAMMETER and entry.unique_id == meter.serial:
                # the user pointed at it: the answer named the meter
                async_update_entry_data(self.hass, entry, {CONF_HOST: client.host, **credentials})
                return self.async_abort(reason="already_configured")
        if (cloud := cloud_entry_of(self.hass, meter.serial)) is not None:
            # Its cloud account has it: a second set of entities would count its energy twice.
            return await self._async_link(cloud, meter)
        return self.async_create_entry(
            title=f"IAMMETER {meter.model or meter.serial}",
            data={
                CONF_SOURCE: SOURCE_LOCAL,
                CONF_VENDOR: VENDOR_IAMMETER,
                CONF_HOST: client.host,
                CONF_SERIAL: meter.serial,
                CONF_NET_METERING: meter.shape is MeterShape.THREE_PHASE_NET,
                **credentials,
            },
        )

    async def async_step_ssdp(self, discovery_info: SsdpServiceInfo) -> ConfigFlowResult:
        """An IAMMETER meter announced itself: read it at the announced address.

        Its answer names it (SN), so a known meter's entry moves only to an address where that
        meter answered; an announcement nobody can read there changes nothing.
        """
        try:
            location = URL(discovery_info.ssdp_location or "")
            host = str(location.origin()).removeprefix("http://")
            self._iammeter_client = iammeter_local_client(self.hass, host, {})
        except (InvalidHost, ValueError):
            # no location, not http, or not a URL (the announcement is anyone's to send)
            return self.async_abort(reason="invalid_discovery_parameters")
        try:
            result = await self._async_read_iammeter()
        except (FlowError, NotIamMeter):
            # Not readable now (not ready, credentials, gone): the next announcement tries again.
            return self.async_abort(reason="cannot_connect")
        self._iammeter_meter = result
        await self.async_set_unique_id(result.serial)
        for entry in self._async_current_entries(include_ignore=True):
            if entry.unique_id == result.serial:
                if entry.source != SOURCE_IGNORE and not self._iammeter_implausible(entry, result):
                    async_update_entry_data(
                        self.hass, entry, {CONF_HOST: self._iammeter_client.host}
                    )
                return self.async_abort(reason="already_configured")
        self.context["title_placeholders"] = {
            "name": f"IAMMETER {result.model or ''}".strip(),
            "serial": result.serial,
        }
        if (cloud := cloud_entry_of(self.hass, result.serial)) is not None:
            if self._iammeter_implausible(cloud, result):
                return self.async_abort(reason="already_configured")
            return await self._async_link(cloud, result)
        return await self.async_step_iammeter_discovery_confirm()

    def _iammeter_implausible(self, entry: ConfigEntry, meter: LocalMeter) -> bool:
        """Whether ``meter``'s counters are below the entry's last reading (then it is not it)."""
        problem = implausible(meter.reading, last_reading(entry, meter.serial))
        if problem is not None:
            LOGGER.debug(
                "%s was announced at an address that did not prove to be it (%s)",
                entry.title,
                problem,
            )
        return problem is not None

    async def async_step_iammeter_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding a discovered meter."""
        if user_input is not None:
            return await self._async_create_iammeter_entry(self._iammeter_meter)
        meter = self._iammeter_meter
        return self.async_show_form(
            step_id="iammeter_discovery_confirm",
            description_placeholders={
                "model": meter.model or meter.meter_info(self._iammeter_client.host).model or "",
                "serial": meter.serial,
                "host": self._iammeter_client.host,
            },
        )

    def _iammeter_link(self) -> dict[str, str]:
        """The address of the flow's meter and the credentials it was read with, if any."""
        client = self._iammeter_client
        link = {CONF_HOST: client.host}
        if (known := client.credentials) is not None:
            link |= {CONF_USERNAME: known.username, CONF_PASSWORD: known.password}
        return link

    async def _async_link(self, cloud: ConfigEntry, meter: LocalMeter) -> ConfigFlowResult:
        """``meter`` is in ``cloud``'s account: offer to read it at its address for that entry.

        A meter linked already follows its new address (its answer named it) without a question.
        """
        if (known := linked_meters(cloud).get(meter.serial)) is not None:
            link = {**known, **self._iammeter_link()}
            if link != known:
                options = with_link(cloud.options, meter.serial, link)
                self.hass.config_entries.async_update_entry(cloud, options=options)
            return self.async_abort(reason="already_configured")
        self._iammeter_meter, self._link_target = meter, cloud
        return await self.async_step_iammeter_link_confirm()

    async def async_step_iammeter_link_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm: live values from this address, history from the cloud account."""
        cloud, meter = self._link_target, self._iammeter_meter
        placeholders = {
            "serial": meter.serial,
            "host": self._iammeter_client.host,
            "account": cloud.title,
        }
        if user_input is None:
            return self.async_show_form(
                step_id="iammeter_link_confirm", description_placeholders=placeholders
            )
        options = with_link(cloud.options, meter.serial, self._iammeter_link())
        self.hass.config_entries.async_update_entry(cloud, options=options)
        return self.async_abort(reason="iammeter_linked", description_placeholders=placeholders)

    async def async_step_iammeter_auth(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The meter asks for its Admin Security credentials."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._iammeter_client.credentials = Credentials(
                user_input[CONF_USERNAME], user_input[CONF_PASSWORD]
            )
            try:
                return await self._async_create_iammeter_entry(await self._async_read_meter())
            except FlowError as err:
                errors["base"] = err.key
        return self.async_show_form(
            step_id="iammeter_auth",
            data_schema=self.add_suggested_values_to_schema(
                CREDENTIALS_SCHEMA, {CONF_USERNAME: DEFAULT_USERNAME}
            ),
            description_placeholders={"host": self._iammeter_client.host},
            errors=errors,
        )

    async def _async_read_meter(self) -> LocalMeter:
        """The meter the flow's client reads where one is expected (else: cannot connect)."""
        try:
            return await self._async_read_iammeter()
        except NotIamMeter as err:
            raise FlowError("cannot_connect") from err

    async def _async_update_iammeter_entry(
        self, entry: ConfigEntry, updates: dict[str, Any], reason: str
    ) -> ConfigFlowResult:
        """Update ``entry`` once its own meter answers the flow's client."""
        meter = await self._async_read_meter()
        abort_if_other_device(entry, meter.serial)
        return self.async_update_reload_and_abort(entry, data_updates=updates, reason=reason)

    async def async_step_reauth_iammeter(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The meter refuses the stored credentials (or asks for some): ask for the new ones."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            self._iammeter_client = iammeter_local_client(
                self.hass, entry.data[CONF_HOST], user_input
            )
            try:
                return await self._async_update_iammeter_entry(
                    entry, user_input, "reauth_successful"
                )
            except FlowError as err:
                errors["base"] = err.key
        return self.async_show_form(
            step_id="reauth_iammeter",
            data_schema=self.add_suggested_values_to_schema(
                CREDENTIALS_SCHEMA, {CONF_USERNAME: entry.data.get(CONF_USERNAME, DEFAULT_USERNAME)}
            ),
            description_placeholders={"name": entry.title, "host": entry.data[CONF_HOST]},
            errors=errors,
        )

    async def async_step_reconfigure_iammeter(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the address of an IAMMETER meter; the same meter must answer there."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                host = valid_host(user_input[CONF_HOST])
                self._iammeter_client = iammeter_local_client(self.hass, host, dict(entry.data))
                return await self._async_update_iammeter_entry(
                    entry, {CONF_HOST: self._iammeter_client.host}, "reconfigure_successful"
                )
            except FlowError as err:
                errors["base"] = err.key
        return self._async_show_address_form("reconfigure_iammeter", entry, user_input, errors)
