"""The update coordinator both sources share: meters in, devices kept in step with them."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
import functools
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api.controls import DeviceControls
from .api.model import ExternalMeter, MeterInfo, Reading
from .const import DOMAIN, LOCAL_COUNTER_RESET, LOGGER
from .counter_guard import ResetRule

# How often the device registry is checked for meters that are gone (not on every poll: walking the
# registry every few seconds is not worth it).
SWEEP_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class MeterData:
    """One meter of an entry: what it is and what it read last."""

    info: MeterInfo
    reading: Reading


type MeterHubData = dict[str, MeterData]


@dataclass(frozen=True, slots=True)
class SourceRuntime[C: MeterHubCoordinator]:
    """What a loaded entry holds (``entry.runtime_data``): its coordinator, and what it adds.

    ``runtime.py`` has the entry type of each source (a cloud entry adds its history jobs).
    """

    coordinator: C

    async def async_start(self) -> None:
        """Start what runs once the entities are set up (what the source pushes)."""
        self.coordinator.async_start_streams()

    def diagnostics(self) -> dict[str, Any]:
        """What the runtime adds to the diagnostics download (nothing by default)."""
        return {}


type MeterHubConfigEntry = ConfigEntry[SourceRuntime[MeterHubCoordinator]]
"""An entry of any source, as the platforms see it."""


def external_device_id(parent: str, external: ExternalMeter) -> str:
    """Device identifier of an external meter: its parent's serial, its type and its own id.

    Scoped to the parent: two P1 meters may both report a gas meter without an id of its own.
    """
    return f"{parent}_{external.key}"


def wrong_device_error(entry: ConfigEntry, serial: str) -> UpdateFailed:
    """The poll's error when another device (``serial``) answers at the entry's address."""
    return UpdateFailed(
        translation_domain=DOMAIN,
        translation_key="wrong_device",
        translation_placeholders={"host": entry.data[CONF_HOST], "serial": serial},
    )


def communication_error(err: Exception) -> UpdateFailed:
    """The poll's error when a device cannot be read (``err`` says why, without secrets)."""
    return UpdateFailed(
        translation_domain=DOMAIN,
        translation_key="communication_error",
        translation_placeholders={"error": str(err)},
    )


def quiet_while_stopping[C: MeterHubCoordinator](
    update: Callable[[C], Coroutine[Any, Any, MeterHubData]],
) -> Callable[[C], Coroutine[Any, Any, MeterHubData]]:
    """Wrap ``_async_update_data``: a poll that fails because Home Assistant stops is no fault.

    Home Assistant closes its web session while it stops; a poll that runs then fails (aiohttp's
    "Session is closed") and the base class would log it at ERROR. Then the last data stays:
    nothing new is published and nothing is logged.
    """

    @functools.wraps(update)
    async def wrapper(coordinator: C) -> MeterHubData:
        try:
            return await update(coordinator)
        except Exception:
            hass = coordinator.hass
            stopping = hass.is_stopping or async_get_clientsession(hass).closed
            if not stopping or coordinator.data is None:
                raise
            LOGGER.debug("Poll of %s cut short: Home Assistant is stopping", coordinator.name)
            return coordinator.data

    return wrapper


class MeterHubCoordinator(DataUpdateCoordinator[MeterHubData]):
    """Polls one source (a HomeWizard device or an IAMMETER account) for all of its meters."""

    # Any source's entry: a coordinator reads its data and options, never its runtime data.
    config_entry: ConfigEntry
    # When a lower counter value is accepted as a meter reset (in this source's own polls).
    counter_reset_rule: ResetRule = LOCAL_COUNTER_RESET
    # How long a meter (or an external meter behind it) may be missing before its device is removed.
    device_gone_after = timedelta(hours=1)
    # While listeners hear of an update of some meters only: their serials (None: every meter).
    updated_serials: frozenset[str] | None = None

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        name: str,
        update_interval: timedelta | None,
    ) -> None:
        """Set up the coordinator of ``entry`` (``update_interval`` None: it schedules its own polls).

        ``name`` is in Home Assistant's own log lines ("Error fetching ..."): it must not hold
        anything private, such as the user name of a cloud account.
        """
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=name,
            update_interval=update_interval,
            # Every poll reaches the entities, also an unchanged one: a counter guard's hold ends
            # on poll time. Entities write their state only when it changed.
            always_update=True,
        )
        # Since when each device has been missing from the answers of a healthy source; time
        # during which the source does not answer does not count.
        self._missing_since: dict[str, datetime] = {}
        # A timer, not a listener: listeners hear only of polls that changed the data.
        entry.async_on_unload(
            async_track_time_interval(
                hass, self._async_sync_devices, SWEEP_INTERVAL, cancel_on_shutdown=True
            )
        )

    async def async_control(self, write: Callable[[DeviceControls], Awaitable[None]]) -> None:
        """Send ``write`` to the device, then read its state back (never an optimistic guess).

        Only sources whose meters name controls (``MeterInfo.controls``) have control entities.
        """
        raise NotImplementedError  # pragma: no cover - no control entities on such a source

    def async_start_streams(self) -> None:
        """Start what the source pushes, once its entities are set up (nothing by default)."""

    @abstractmethod
    def diagnostics(self) -> dict[str, Any]:
        """Source-specific data for the diagnostics download (raw payloads, budget)."""

    @callback
    def _async_sync_devices(self, now: datetime) -> None:
        """Remove the devices of meters that have been gone for ``device_gone_after``."""
        # A source that does not answer says nothing about its meters.
        if not self.last_update_success or self.data is None:
            return
        # The data is that of the last poll, and that poll succeeded.
        present = set(self.data)
        for serial, meter in self.data.items():
            present.update(
                external_device_id(serial, external)
                for external in meter.reading.externals.values()
            )
        registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            ids = [ident for domain, ident in device.identifiers if domain == DOMAIN]
            if not ids or ids[0] in present:
                self._missing_since.pop(ids[0] if ids else "", None)
                continue
            missing_since = self._missing_since.setdefault(ids[0], now)
            if now - missing_since >= self.device_gone_after:
                LOGGER.info("Removing %s: not reported for %s", device.name, now - missing_since)
                registry.async_remove_device(device.id)
                del self._missing_since[ids[0]]
