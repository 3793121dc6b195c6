"""Coordinator of an IAMMETER cloud account: one ``metersdata`` call per poll for all meters.

The cloud blocks clients that call too often, so every call goes through the call budget, the
token is kept with the entry (a restart never logs in), and the last good answer is stored so
that after a restart the sensors have their values before any call is made.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .api import iammeter
from .api.budget import LIMITS, LOGIN_KEY, BudgetExceeded, CallKind
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
    CLOUD_COUNTER_RESET,
    CLOUD_SCAN_INTERVAL,
    CLOUD_STALE_AFTER,
    CONF_ACCOUNT_ID,
    CONF_REFRESH_TOKEN,
    CONF_SCAN_INTERVAL,
    CONF_SERVER,
    CONF_TOKEN,
    DOMAIN,
    LOGGER,
)
from .coordinator import MeterData, MeterHubCoordinator, MeterHubData, quiet_while_stopping

if TYPE_CHECKING:
    from .iammeter_link import IamMeterLinks
    from .runtime import CloudConfigEntry

STORAGE_VERSION = 1
# After the cloud answered "nothing" (a limit was hit, maybe by another client of the account),
# wait this long before asking again (unless the answer said how long).
RATE_LIMIT_BACK_OFF = timedelta(minutes=30)
# The next poll is sent 5 minutes and this margin after the last call ended. The cloud counts a
# call when it arrives, which is before its answer is back here: counted from the answer, the
# 5 minutes hold at the cloud whatever the network delays. The margin covers timer granularity
# and clock rates; polls stay 5 minutes and a round trip apart, close to 288 a day.
POLL_MARGIN = timedelta(seconds=0.1)
# A refused call that came less than this after the 5 minutes of the last good one was refused
# by the cloud's own reckoning of those 5 minutes: waiting one window is enough.
EDGE_OF_WINDOW = timedelta(seconds=10)
METERSDATA_WINDOW = max(window.period for window in LIMITS[CallKind.METERSDATA])


def cloud_entry_title(account_id: str) -> str:
    """The title of an account's entry (never its user name: often an e-mail address)."""
    return f"IAMMETER account {account_id}"


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
    budget: CloudBudget,
    client: IamMeterClient,
    account_id: str,
    *,
    last_success: datetime | None = None,
) -> dict[str, MeterReading]:
    """One ``metersdata`` call through the budget; raises ``BudgetExceeded`` or client errors.

    ``last_success`` is when the last good answer came, if known.
    """
    await budget.async_spend(CallKind.METERSDATA, account_id)
    try:
        return await client.meters_data()
    except RateLimited as err:
        now = dt_util.utcnow()
        back_off = err.retry_after or RATE_LIMIT_BACK_OFF
        if (
            not err.retry_after
            and last_success is not None
            and now - last_success < METERSDATA_WINDOW + EDGE_OF_WINDOW
        ):
            back_off = METERSDATA_WINDOW
        await budget.async_back_off(CallKind.METERSDATA, account_id, now + back_off)
        raise


def to_meter_data(meters: dict[str, MeterReading]) -> MeterHubData:
    """The coordinator's view of a ``metersdata`` answer."""
    return {sn: MeterData(meter.meter_info, meter.reading) for sn, meter in meters.items()}


class CloudCoordinator(MeterHubCoordinator):
    """Polls every meter of one IAMMETER account, each poll as soon as the call budget allows.

    The base class's schedule is not used: it rounds to whole seconds of the loop clock and adds a
    random fraction of a second, so at a limit of one call per 5 minutes it would lose a poll
    every hour or so. A timer of its own fires at the exact moment the next poll is due.
    """

    # Counters arrive every 5 minutes: the reset rule is stated in those polls.
    counter_reset_rule = CLOUD_COUNTER_RESET
    # The account's meter list is authoritative: a meter missing from it for 15 minutes is gone.
    device_gone_after = timedelta(minutes=15)

    def __init__(
        self,
        hass: HomeAssistant,
        entry: CloudConfigEntry,
        client: IamMeterClient,
        budget: CloudBudget,
    ) -> None:
        """Poll the account every 5 minutes, or slower if the user chose so."""
        self.poll_interval = timedelta(
            seconds=max(
                entry.options.get(CONF_SCAN_INTERVAL, 0), CLOUD_SCAN_INTERVAL.total_seconds()
            )
        )
        super().__init__(hass, entry, cloud_entry_title(entry.data[CONF_ACCOUNT_ID]), None)
        self.client = client
        self.budget = budget
        self.account_id: str = entry.data[CONF_ACCOUNT_ID]
        self.store = reading_store(hass, self.account_id)
        # When the last good answer came.
        self.fetched_at: datetime | None = None
        # When the last call known ended (answered or not): the next keeps the interval from it.
        self._call_ended_at: datetime | None = None
        # When the next poll is due (None: no poll scheduled).
        self.next_poll_at: datetime | None = None
        self._cancel_next_poll: CALLBACK_TYPE | None = None
        # Set while the cloud rejects the token and no new one could be had yet.
        self._token_error: TokenRejected | None = None
        # Meters of the account read at their local address too (None: none is).
        self.links: IamMeterLinks | None = None
        entry.async_on_unload(self._async_unschedule)

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
        self.fetched_at = self._call_ended_at = fetched_at

    def _fresh_data(self) -> MeterHubData | None:
        """The last reading while it is younger than ``CLOUD_STALE_AFTER``."""
        if self.data is None or self.fetched_at is None:
            return None
        if dt_util.utcnow() - self.fetched_at >= CLOUD_STALE_AFTER:
            return None
        return self.data

    @quiet_while_stopping
    async def _async_update_data(self) -> MeterHubData:
        try:
            data = await self._async_poll()
        except ConfigEntryAuthFailed:
            # The password is wrong: no call (no login) before the user gives the right one.
            self._async_unschedule()
            raise
        except Exception:
            self._schedule_next_poll()
            raise
        self._schedule_next_poll()
        return data if self.links is None else self.links.overlay(data)

    @callback
    def _schedule_next_poll(self) -> None:
        """Poll again as soon as the budget and the chosen interval allow.

        A long wait (a back-off after a refused call) is checked at the usual interval all the
        same, so that a reading that gets too old is noticed.
        """
        self._async_unschedule()
        if self.config_entry.pref_disable_polling or self.hass.is_stopping:
            return
        now = dt_util.utcnow()
        due = self.budget.ledger.next_allowed(CallKind.METERSDATA, self.account_id)
        if self._call_ended_at is not None:
            due = max(due, self._call_ended_at + self.poll_interval)
        self.next_poll_at = min(due, now + self.poll_interval) + POLL_MARGIN
        self._cancel_next_poll = async_track_point_in_utc_time(
            self.hass, self._async_poll_due, self.next_poll_at
        )

    @callback
    def _async_unschedule(self) -> None:
        if self._cancel_next_poll is not None:
            self._cancel_next_poll()
            self._cancel_next_poll = None
        self.next_poll_at = None

    @callback
    def _async_poll_due(self, _now: datetime) -> None:
        self._cancel_next_poll = None
        if not self.hass.is_stopping:
            # In the background, as the base class runs its scheduled polls.
            self.config_entry.async_create_background_task(
                self.hass, self.async_refresh(), f"{self.name} poll", eager_start=True
            )

    async def _async_poll(self) -> MeterHubData:
        now = dt_util.utcnow()
        if (
            self.data is not None
            and self.fetched_at is not None
            and timedelta() <= now - self.fetched_at < self.poll_interval
        ):
            # Read less than the chosen interval ago (a restart, the config flow, a manual
            # refresh): the reading stands and the next poll keeps to the interval.
            return self.data
        try:
            if self._token_error is not None:
                # Reading with a rejected token would only spend a call: sign in first.
                await self._async_relogin()
                if self._token_error is not None:
                    return self._keep_or_fail(self._token_error)
            try:
                meters = await async_fetch_meters(
                    self.budget, self.client, self.account_id, last_success=self.fetched_at
                )
            except IamMeterError:
                self._call_ended_at = dt_util.utcnow()  # it was made, and failed
                raise
        except BudgetExceeded as err:
            # Not our turn yet (a restart right after a poll, a back-off): the stored reading
            # stands until the budget allows the next poll.
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
        self.fetched_at = self._call_ended_at = dt_util.utcnow()
        await async_save_answer(self.store, self.client.last_meters_payload, self.fetched_at)
        return to_meter_data(meters)

    def _keep_or_fail(self, err: IamMeterError) -> MeterHubData:
        """After a failed poll: keep a fresh reading, or fail with the reason."""
        if (data := self._fresh_data()) is not None:
            LOGGER.debug("IAMMETER poll failed, keeping the last reading: %s", err)
            return data
        if self.links is not None and (live := self.links.without_cloud()) is not None:
            LOGGER.debug("IAMMETER poll failed, only the linked meters are current: %s", err)
            return live
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
            "next_poll_at": self.next_poll_at.isoformat() if self.next_poll_at else None,
            "metersdata": self.client.last_meters_payload,
            "budget": self.budget.ledger.to_dict(),
            "local_links": self.links.diagnostics() if self.links else {},
        }


async def async_create_cloud_coordinator(
    hass: HomeAssistant, entry: CloudConfigEntry
) -> CloudCoordinator:
    """Build the client and coordinator of a cloud entry, starting from the stored reading."""
    client = IamMeterClient(
        async_get_clientsession(hass), entry.data[CONF_SERVER], token=entry.data[CONF_TOKEN]
    )
    coordinator = CloudCoordinator(hass, entry, client, await async_get_budget(hass))
    await coordinator.async_load_stored()
    return coordinator
