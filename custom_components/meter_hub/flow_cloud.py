"""Config flow steps of an IAMMETER cloud account: sign in, reauth, reconfigure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.util import dt as dt_util
import voluptuous as vol
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
from .cloud_coordinator import async_fetch_meters, async_login, async_save_answer, reading_store
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
    text = text.strip().rstrip("/")
    url = URL(text if "://" in text else f"https://{text}")
    if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string:
        raise InvalidServer(text)
    if url.path not in ("", "/"):
        raise InvalidServer(text)
    return str(url.origin())


class CloudFlow(ConfigFlow):
    """The IAMMETER half of the config flow."""

    async def _async_sign_in(
        self, server: str, username: str, password: str, placeholders: dict[str, str]
    ) -> tuple[Credentials | None, IamMeterClient | None, str | None]:
        """Log in through the call budget; returns the credentials or an error key."""
        try:
            server = normalise_server(server)
        except InvalidServer:
            return None, None, "invalid_server"
        budget = await async_get_budget(self.hass)
        client = IamMeterClient(async_get_clientsession(self.hass), server)
        try:
            credentials = await async_login(budget, client, username, password)
        except BudgetExceeded as err:
            placeholders["retry_at"] = _local_time(err.retry_at)
            return None, None, "rate_limited"
        except RateLimited:
            placeholders["retry_at"] = _local_time(
                budget.ledger.next_allowed(CallKind.LOGIN, LOGIN_KEY)
            )
            return None, None, "rate_limited"
        except InvalidAuth:
            return None, None, "invalid_auth"
        except CannotConnect:
            return None, None, "cannot_connect"
        except IamMeterError as err:
            LOGGER.warning("IAMMETER sign-in failed: %s", err)
            return None, None, "cannot_connect"
        return credentials, client, None

    async def async_step_cloud(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Sign in to an IAMMETER account and add all of its meters."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            server = user_input.get(CONF_SERVER, DEFAULT_SERVER)
            credentials, client, error = await self._async_sign_in(
                server, user_input[CONF_USERNAME], user_input[CONF_PASSWORD], placeholders
            )
            if credentials is not None and client is not None:
                await self.async_set_unique_id(credentials.account_id)
                self._abort_if_unique_id_configured()
                error = await self._async_check_meters(client, credentials, placeholders)
                if error is None:
                    return self.async_create_entry(
                        title=user_input[CONF_USERNAME],
                        data={
                            CONF_SOURCE: SOURCE_CLOUD,
                            CONF_SERVER: normalise_server(server),
                            CONF_USERNAME: user_input[CONF_USERNAME],
                            CONF_PASSWORD: user_input[CONF_PASSWORD],
                            CONF_ACCOUNT_ID: credentials.account_id,
                            CONF_TOKEN: credentials.token,
                            CONF_REFRESH_TOKEN: credentials.refresh_token,
                        },
                    )
            errors["base"] = error or "unknown"
        return self.async_show_form(
            step_id="cloud",
            data_schema=self.add_suggested_values_to_schema(
                CLOUD_SCHEMA, {k: v for k, v in (user_input or {}).items() if k != CONF_PASSWORD}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_check_meters(
        self, client: IamMeterClient, credentials: Credentials, placeholders: dict[str, str]
    ) -> str | None:
        """List the account's meters (one ``metersdata`` call, kept for the entry's first poll)."""
        budget = await async_get_budget(self.hass)
        try:
            meters = await async_fetch_meters(budget, client, credentials.account_id)
        except BudgetExceeded as err:
            placeholders["retry_at"] = _local_time(err.retry_at)
            return "rate_limited"
        except RateLimited:
            placeholders["retry_at"] = _local_time(
                budget.ledger.next_allowed(CallKind.METERSDATA, credentials.account_id)
            )
            return "rate_limited"
        except IamMeterError as err:
            LOGGER.warning("Cannot list the meters of the IAMMETER account: %s", err)
            return "cannot_connect"
        if not meters:
            return "no_meters"
        await async_save_answer(
            reading_store(self.hass, credentials.account_id),
            client.last_meters_payload,
            dt_util.utcnow(),
        )
        return None

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The cloud refused the stored password: ask for the current one."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders = {CONF_USERNAME: entry.data[CONF_USERNAME]}
        if user_input is not None:
            credentials, _, error = await self._async_sign_in(
                entry.data[CONF_SERVER],
                entry.data[CONF_USERNAME],
                user_input[CONF_PASSWORD],
                placeholders,
            )
            if credentials is not None:
                await self.async_set_unique_id(credentials.account_id)
                self._abort_if_unique_id_mismatch(reason="wrong_account")
                return self.async_update_and_abort(
                    entry,
                    data_updates={
                        CONF_PASSWORD: user_input[CONF_PASSWORD],
                        CONF_TOKEN: credentials.token,
                        CONF_REFRESH_TOKEN: credentials.refresh_token,
                    },
                    reason="reauth_successful",
                )
            errors["base"] = error or "unknown"
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
            credentials, _, error = await self._async_sign_in(
                user_input[CONF_SERVER],
                user_input[CONF_USERNAME],
                user_input[CONF_PASSWORD],
                placeholders,
            )
            if credentials is not None:
                await self.async_set_unique_id(credentials.account_id)
                self._abort_if_unique_id_mismatch(reason="wrong_account")
                return self.async_update_and_abort(
                    entry,
                    data_updates={
                        CONF_SERVER: normalise_server(user_input[CONF_SERVER]),
                        CONF_USERNAME: user_input[CONF_USERNAME],
                        CONF_PASSWORD: user_input[CONF_PASSWORD],
                        CONF_TOKEN: credentials.token,
                        CONF_REFRESH_TOKEN: credentials.refresh_token,
                    },
                    reason="reconfigure_successful",
                )
            errors["base"] = error or "unknown"
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


def _local_time(moment: datetime) -> str:
    """A time the user reads in the form, in Home Assistant's time zone."""
    return str(dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M"))
