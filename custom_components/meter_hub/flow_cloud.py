"""Config flow steps of an IAMMETER cloud account: sign in, reauth, reconfigure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.util import dt as dt_util
from yarl import URL

from .api.budget import LOGIN_KEY, BudgetExceeded, CallKind
from .api.iammeter import (
    CannotConnect,
    Credentials,
    IamMeterClient,
    IamMeterError,
    InvalidAuth,
    RateLimited,
)
from .cloud_budget import async_get_budget
from .cloud_coordinator import (
    async_fetch_meters,
    async_login,
    async_save_answer,
    cloud_entry_title,
    reading_store,
)
from .compat import vol
from .const import (
    CONF_ACCOUNT_ID,
    CONF_REFRESH_TOKEN,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    DEFAULT_SERVER,
    LOGGER,
    SOURCE_CLOUD,
)
from .entry_update import async_update_entry_data
from .flow_error import FlowError

USERNAME = TextSelector(TextSelectorConfig(type=TextSelectorType.TEXT, autocomplete="username"))
PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
SERVER = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))

CLOUD_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_USERNAME): USERNAME,
        vol.Required(CONF_PASSWORD): PASSWORD,
        vol.Optional(CONF_SERVER, default=DEFAULT_SERVER): SERVER,
    }
)
REAUTH_SCHEMA = vol.Schema({vol.Required(CONF_PASSWORD): PASSWORD})


class InvalidServer(Exception):
    """The server is not an http(s) address without path."""


def normalise_server(text: str) -> str:
    """``https://host[:port]`` from what the user typed (a missing scheme means https)."""
    text = text.strip()
    url = URL(text if "://" in text else f"https://{text}")
    if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string:
        raise InvalidServer(text)
    if url.path not in ("", "/"):
        raise InvalidServer(text)
    return str(url.origin())


type _CloudStep = Callable[[dict[str, Any]], Awaitable[ConfigFlowResult]]


class CloudFlow(ConfigFlow):
    """The IAMMETER half of the config flow."""

    # The plain http server the user agreed to send the password and token to, unencrypted.
    _http_confirmed: str | None = None
    # The step to go on with, and its input, once the user confirms an http server (set when
    # the confirmation form is shown).
    _awaiting_http_confirm: tuple[_CloudStep, dict[str, Any]]

    def _async_confirm_http(
        self, step: _CloudStep, user_input: dict[str, Any]
    ) -> ConfigFlowResult | None:
        """Ask before anything goes to a plain http server (None: nothing to ask).

        The password (at each sign-in) and the token (in every call) would cross the network
        unencrypted: the user must say so explicitly, before the first sign-in.
        """
        try:
            server = normalise_server(user_input.get(CONF_SERVER, DEFAULT_SERVER))
        except InvalidServer:
            return None  # the sign-in says so
        if URL(server).scheme != "http" or server == self._http_confirmed:
            return None
        self._awaiting_http_confirm = (step, user_input)
        return self.async_show_form(
            step_id="insecure_server", description_placeholders={CONF_SERVER: server}
        )

    async def async_step_insecure_server(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The user confirmed the http server: go on signing in to it."""
        step, pending = self._awaiting_http_confirm
        self._http_confirmed = normalise_server(pending[CONF_SERVER])
        return await step(pending)

    # The last successful sign-in of this flow: submitting the same form again after an error
    # that came later (no meters yet, metersdata not allowed yet) does not spend another login.
    _signed_in: tuple[tuple[str, str, str], Credentials, IamMeterClient] | None = None

    async def _async_sign_in(
        self, server: str, username: str, password: str
    ) -> tuple[Credentials, IamMeterClient]:
        """Log in through the call budget."""
        try:
            server = normalise_server(server)
        except InvalidServer as err:
            raise FlowError("invalid_server") from err
        if self._signed_in is not None and self._signed_in[0] == (server, username, password):
            return self._signed_in[1], self._signed_in[2]
        budget = await async_get_budget(self.hass)
        client = IamMeterClient(async_get_clientsession(self.hass), server)
        try:
            credentials = await async_login(budget, client, username, password)
        except BudgetExceeded as err:
            raise FlowError("rate_limited", retry_at=_local_time(err.retry_at)) from err
        except RateLimited as err:
            retry_at = budget.ledger.next_allowed(CallKind.LOGIN, LOGIN_KEY)
            raise FlowError("rate_limited", retry_at=_local_time(retry_at)) from err
        except InvalidAuth as err:
            raise FlowError("invalid_auth") from err
        except CannotConnect as err:
            raise FlowError("cannot_connect") from err
        except IamMeterError as err:
            LOGGER.warning("IAMMETER sign-in failed: %s", err)
            raise FlowError("cannot_connect") from err
        self._signed_in = ((server, username, password), credentials, client)
        return credentials, client

    async def async_step_cloud(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Sign in to an IAMMETER account and add all of its meters."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            server = user_input.get(CONF_SERVER, DEFAULT_SERVER)
            with suppress(InvalidServer):
                # The same user on the same server is the same account: no login needed to know.
                self._async_abort_entries_match(
                    {
                        CONF_SERVER: normalise_server(server),
                        CONF_USERNAME: user_input[CONF_USERNAME],
                    }
                )
            if confirm := self._async_confirm_http(self.async_step_cloud, user_input):
                return confirm
            try:
                return await self._async_add_account(
                    server, user_input[CONF_USERNAME], user_input[CONF_PASSWORD]
                )
            except FlowError as err:
                errors["base"] = err.key
                placeholders = err.placeholders
        return self.async_show_form(
            step_id="cloud",
            data_schema=self.add_suggested_values_to_schema(
                CLOUD_SCHEMA, {k: v for k, v in (user_input or {}).items() if k != CONF_PASSWORD}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_add_account(
        self, server: str, username: str, password: str
    ) -> ConfigFlowResult:
        """Sign in, check that the account has meters, and add it."""
        credentials, client = await self._async_sign_in(server, username, password)
        await self.async_set_unique_id(credentials.account_id)
        self._abort_if_unique_id_configured()
        await self._async_check_meters(client, credentials)
        return self.async_create_entry(
            # not the user name: an e-mail address would be in every log line
            title=cloud_entry_title(credentials.account_id),
            data={
                CONF_SOURCE: SOURCE_CLOUD,
                CONF_SERVER: normalise_server(server),
                CONF_USERNAME: username,
                CONF_PASSWORD: password,
                CONF_ACCOUNT_ID: credentials.account_id,
                CONF_TOKEN: credentials.token,
                CONF_REFRESH_TOKEN: credentials.refresh_token,
            },
        )

    async def _async_check_meters(self, client: IamMeterClient, credentials: Credentials) -> None:
        """List the account's meters (one ``metersdata`` call, kept for the entry's first poll)."""
        budget = await async_get_budget(self.hass)
        try:
            meters = await async_fetch_meters(budget, client, credentials.account_id)
        except BudgetExceeded as err:
            raise FlowError("rate_limited", retry_at=_local_time(err.retry_at)) from err
        except RateLimited as err:
            retry_at = budget.ledger.next_allowed(CallKind.METERSDATA, credentials.account_id)
            raise FlowError("rate_limited", retry_at=_local_time(retry_at)) from err
        except IamMeterError as err:
            LOGGER.warning("Cannot list the meters of the IAMMETER account: %s", err)
            raise FlowError("cannot_connect") from err
        if not meters:
            raise FlowError("no_meters")
        await async_save_answer(
            reading_store(self.hass, credentials.account_id),
            client.last_meters_payload,
            dt_util.utcnow(),
        )

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The cloud refused the stored password: ask for the current one."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders = {CONF_USERNAME: entry.data[CONF_USERNAME]}
        if user_input is not None:
            try:
                return await self._async_update_account(
                    entry, {**entry.data, **user_input}, "reauth_successful"
                )
            except FlowError as err:
                errors["base"] = err.key
                placeholders |= err.placeholders
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure_cloud(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the server or user name of the account (signing in checks them)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            if confirm := self._async_confirm_http(self.async_step_reconfigure_cloud, user_input):
                return confirm
            try:
                return await self._async_update_account(entry, user_input, "reconfigure_successful")
            except FlowError as err:
                errors["base"] = err.key
                placeholders = err.placeholders
        suggested = user_input or {
            CONF_SERVER: entry.data[CONF_SERVER],
            CONF_USERNAME: entry.data[CONF_USERNAME],
        }
        return self.async_show_form(
            step_id="reconfigure_cloud",
            data_schema=self.add_suggested_values_to_schema(
                CLOUD_SCHEMA, {k: v for k, v in suggested.items() if k != CONF_PASSWORD}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_update_account(
        self, entry: ConfigEntry, account: Mapping[str, Any], reason: str
    ) -> ConfigFlowResult:
        """Sign in to ``account`` (server, user name, password): the entry's account, updated."""
        server, username, password = (
            account[CONF_SERVER],
            account[CONF_USERNAME],
            account[CONF_PASSWORD],
        )
        credentials, _ = await self._async_sign_in(server, username, password)
        await self.async_set_unique_id(credentials.account_id)
        self._abort_if_unique_id_mismatch(reason="wrong_account")
        return self._async_update_reload_and_abort(
            entry,
            {
                CONF_SERVER: normalise_server(server),
                CONF_USERNAME: username,
                CONF_PASSWORD: password,
                CONF_TOKEN: credentials.token,
                CONF_REFRESH_TOKEN: credentials.refresh_token,
            },
            reason,
        )

    def _async_update_reload_and_abort(
        self, entry: ConfigEntry, updates: dict[str, Any], reason: str
    ) -> ConfigFlowResult:
        """Store ``updates`` in ``entry`` and make sure the entry runs with them.

        Also an entry whose settings stay the same is reloaded: one whose setup failed on the
        old password, or a loaded one that stopped polling when the cloud refused its password.
        (``async_update_and_abort`` is not on config flows in Home Assistant 2025.4, and
        ``async_update_reload_and_abort`` would reload a loaded entry twice.)
        """
        async_update_entry_data(self.hass, entry, updates, reload_unchanged=True)
        return self.async_abort(reason=reason)


def _local_time(moment: datetime) -> str:
    """A time the user reads in the form, in Home Assistant's time zone."""
    return str(dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M"))
