"""Coordinator of an IAMMETER cloud account: one ``metersdata`` call per poll for all meters.

The cloud blocks clients that call too often, so every call goes through the call budget, the
token is kept with the entry (a restart never logs in), and the last good answer is stored so
that after a restart the sensors have their values before any call is made.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .api import iammeter
from .api.budget import LOGIN_KEY, BudgetExceeded, CallKind
from .api.iammeter import (
    Credentials,
    IamMeterClient,
    IamMeterError,
    InvalidAuth,
    MeterReading,
    RateLimited,
    TokenRejected,
)
from .cloud_budget import CloudBudget, async_get_budget
from .const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_STALE_AFTER,
    CONF_ACCOUNT_ID,
    CONF_REFRESH_TOKEN,
    CONF_SCAN_INTERVAL,
    CONF_SERVER,
    CONF_TOKEN,
    COUNTER_RESET_HOLD,
    DOMAIN,
    LOGGER,
)
from .coordinator import MeterData, MeterHubConfigEntry, MeterHubCoordinator, MeterHubData

STORAGE_VERSION = 1
# After the cloud answered "nothing" (a limit was hit, maybe by another client of the account),
# wait this long before asking again (unless the answer said how long).
RATE_LIMIT_BACK_OFF = timedelta(minutes=30)
# Added to the polling interval and to a wait for the budget. Home Assistant schedules a poll on
# whole seconds of its loop clock (up to a second early), and the cloud counts a call when it
# arrives: without a margin, every other poll would come a moment before the 5 minutes are over
# and be refused.
POLL_MARGIN = timedelta(seconds=5)


def reading_store(hass: HomeAssistant, account_id: str) -> Store[dict[str, Any]]:
    """Where the last good ``metersdata`` answer of an account is kept."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.cloud_{account_id}")


async def async_save_answer(
    store: Store[dict[str, Any]], payload: object, fetched_at: datetime
) -> None:
    """Keep a ``metersdata`` answer for the next start."""
    await store.async_save({"fetched_at": fetched_at.isoformat(), "payload": payload})


async def async_login(
    budget: CloudBudget, client: IamMeterClient, username: str, password: str
) -> Credentials:
    """Log in through the budget; raises ``BudgetExceeded`` or the client's errors."""
    await budget.async_spend(CallKind.LOGIN, LOGIN_KEY)
    try:
        return await client.login(username, password)
    except RateLimited as err:
        # Without a Retry-After, the longest login window: the cloud does not say which limit.
        until = dt_util.utcnow() + err.retry_after if err.retry_after else None
        await budget.async_back_off(CallKind.LOGIN, LOGIN_KEY, until)
        raise


async def async_fetch_meters(
    budget: CloudBudget, client: IamMeterClient, account_id: str
) -> dict[str, MeterReading]:
    """One ``metersdata`` call through the budget; raises ``BudgetExceeded`` or client errors."""
    await budget.async_spend(CallKind.METERSDATA, account_id)
    try:
        return await client.meters_data()
    except RateLimited as err:
        until = dt_util.utcnow() + (err.retry_after or RATE_LIMIT_BACK_OFF)
        await budget.async_back_off(CallKind.METERSDATA, account_id, until)
        raise


def to_meter_data(meters: dict[str, MeterReading]) -> MeterHubData:
    """The coordinator's view of a ``metersdata`` answer."""
    return {sn: MeterData(meter.meter_info, meter.reading) for sn, meter in meters.items()}


class CloudCoordinator(MeterHubCoordinator):
    """Polls every meter of one IAMMETER account."""

    # Counters arrive every 5 minutes: a lower value is accepted on the second poll that has it.
    counter_reset_hold = COUNTER_RESET_HOLD
    # The account's meter list is authoritative: a meter missing from it for 15 minutes is gone.
    device_gone_after = timedelta(minutes=15)
    # Every meter of an account uploads to the cloud: each gets an "Uploading" sensor.
    tracks_uploads = True

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MeterHubConfigEntry,
        client: IamMeterClient,
        budget: CloudBudget,
    ) -> None:
        """Poll the account every 5 minutes, or slower if the user chose so."""
        self.poll_interval = timedelta(
            seconds=max(
                entry.options.get(CONF_SCAN_INTERVAL, 0), CLOUD_SCAN_INTERVAL.total_seconds()
            )
        )
        super().__init__(hass, entry, self.poll_interval + POLL_MARGIN)
        self.client = client
        self.budget = budget
        self.account_id: str = entry.data[CONF_ACCOUNT_ID]
        self.store = reading_store(hass, self.account_id)
        self.fetched_at: datetime | None = None
        # Set while the cloud rejects the token and no new one could be had yet.
        self._token_error: TokenRejected | None = None

    async def async_load_stored(self) -> None:
        """Start from the answer stored by the last run (no call is made)."""
        stored = await self.store.async_load()
        if not stored:
            return
        try:
            meters = iammeter.parse_meters_data(stored["payload"])
            fetched_at = datetime.fromisoformat(stored["fetched_at"])
        except (IamMeterError, KeyError, TypeError, ValueError) as err:
            LOGGER.debug("Ignoring the stored IAMMETER answer: %s", err)
            return
        self.data = to_meter_data(meters)
        self.fetched_at = fetched_at

    def _fresh_data(self) -> MeterHubData | None:
        """The last reading while it is younger than ``CLOUD_STALE_AFTER``."""
        if self.data is None or self.fetched_at is None:
            return None
        if dt_util.utcnow() - self.fetched_at >= CLOUD_STALE_AFTER:
            return None
        return self.data

    async def _async_update_data(self) -> MeterHubData:
        now = dt_util.utcnow()
        if (
            self.data is not None
            and self.fetched_at is not None
            and timedelta() <= now - self.fetched_at < self.poll_interval
        ):
            # Read less than the chosen interval ago (a restart, the config flow, a manual
            # refresh): the reading stands and the next poll keeps to the interval.
            wait = self.fetched_at + self.poll_interval - now + POLL_MARGIN
            self.update_interval = min(wait, self.poll_interval + POLL_MARGIN)
            return self.data
        try:
            if self._token_error is not None:
                # Reading with a rejected token would only spend a call: sign in first.
                await self._async_relogin()
                if self._token_error is not None:
                    return self._keep_or_fail(self._token_error)
            meters = await async_fetch_meters(self.budget, self.client, self.account_id)
        except BudgetExceeded as err:
            # Not our turn yet (a restart right after a poll, a back-off): poll again as soon as
            # the budget allows, and meanwhile the stored reading stands. A long wait is checked
            # at the usual interval all the same, so a reading that gets too old is noticed.
            wait = max(err.retry_at - now, timedelta()) + POLL_MARGIN
            self.update_interval = min(wait, self.poll_interval + POLL_MARGIN)
            if (data := self._fresh_data()) is not None:
                return data
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="budget_wait",
                translation_placeholders={"retry_at": dt_util.as_local(err.retry_at).isoformat()},
            ) from err
        except TokenRejected as err:
            self._token_error = err
            await self._async_relogin()
            return self._keep_or_fail(err)
        except IamMeterError as err:
            return self._keep_or_fail(err)
        self.update_interval = self.poll_interval + POLL_MARGIN
        self.fetched_at = dt_util.utcnow()
        await async_save_answer(self.store, self.client.last_meters_payload, self.fetched_at)
        return to_meter_data(meters)

    def _keep_or_fail(self, err: IamMeterError) -> MeterHubData:
        """After a failed poll: keep a fresh reading, or fail with the reason."""
        if (data := self._fresh_data()) is not None:
            LOGGER.debug("IAMMETER poll failed, keeping the last reading: %s", err)
            return data
        raise UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="cloud_error",
            translation_placeholders={"error": str(err)},
        ) from err

    async def _async_relogin(self) -> None:
        """The cloud rejected the token: log in again (through the budget) and keep the token.

        The meters are read again at the next poll: ``metersdata`` may be called once per 5
        minutes, and the rejected call may have counted. A login that is not possible now is
        tried again at the next poll, before any other call.
        """
        entry = self.config_entry
        try:
            credentials = await async_login(
                self.budget, self.client, entry.data[CONF_USERNAME], entry.data[CONF_PASSWORD]
            )
        except InvalidAuth as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except (BudgetExceeded, IamMeterError) as err:
            LOGGER.debug("Cannot log in to IAMMETER again yet: %s", err)
            return
        self._token_error = None
        self.hass.config_entries.async_update_entry(
            entry,
            data={
                **entry.data,
                CONF_TOKEN: credentials.token,
                CONF_REFRESH_TOKEN: credentials.refresh_token,
            },
        )

    def diagnostics(self) -> dict[str, Any]:
        """The last raw answer and the state of the call budget."""
        return {
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "metersdata": self.client.last_meters_payload,
            "budget": self.budget.ledger.to_dict(),
        }


async def async_create_cloud_coordinator(
    hass: HomeAssistant, entry: MeterHubConfigEntry
) -> CloudCoordinator:
    """Build the client and coordinator of a cloud entry, starting from the stored reading."""
    client = IamMeterClient(
        async_get_clientsession(hass), entry.data[CONF_SERVER], token=entry.data[CONF_TOKEN]
    )
    coordinator = CloudCoordinator(hass, entry, client, await async_get_budget(hass))
    await coordinator.async_load_stored()
    return coordinator
