"""The config-entry type of each source, and the runtime data of a cloud entry.

The platforms see any entry as a ``MeterHubConfigEntry`` (a ``SourceRuntime`` of some
coordinator). Code for one source narrows an entry to its own type with the guard below, and
then has the coordinator (and for a cloud entry its history jobs) with their own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .cloud_coordinator import CloudCoordinator, async_create_cloud_coordinator
from .const import CONF_SOURCE, CONF_VENDOR, SOURCE_LOCAL, VENDOR_IAMMETER
from .coordinator import SourceRuntime
from .history import CloudHistory
from .iammeter_local_coordinator import IamMeterLocalCoordinator
from .local_coordinator import LocalCoordinator


@dataclass(frozen=True, slots=True)
class CloudRuntime(SourceRuntime[CloudCoordinator]):
    """An IAMMETER account: its coordinator and its history jobs (None without the recorder)."""

    history: CloudHistory | None

    async def async_start(self) -> None:
        """Start the history jobs (backfill of the energy statistics, the place's energy)."""
        await super(CloudRuntime, self).async_start()
        if self.history is not None:
            await self.history.async_start()

    def diagnostics(self) -> dict[str, Any]:
        """The history jobs' state: gaps, retries, failures, learned clock, last place sync."""
        return {"history": None if self.history is None else self.history.diagnostics()}


type CloudConfigEntry = ConfigEntry[CloudRuntime]
type HomeWizardConfigEntry = ConfigEntry[SourceRuntime[LocalCoordinator]]
type IamMeterLocalConfigEntry = ConfigEntry[SourceRuntime[IamMeterLocalCoordinator]]


def is_cloud_entry(entry: ConfigEntry[Any]) -> TypeGuard[CloudConfigEntry]:
    """Whether ``entry`` is an IAMMETER account's."""
    return bool(entry.data[CONF_SOURCE] != SOURCE_LOCAL)


def is_iammeter_local_entry(entry: ConfigEntry[Any]) -> TypeGuard[IamMeterLocalConfigEntry]:
    """Whether ``entry`` is an IAMMETER meter's on the local network."""
    return not is_cloud_entry(entry) and entry.data.get(CONF_VENDOR) == VENDOR_IAMMETER


def is_homewizard_entry(entry: ConfigEntry[Any]) -> TypeGuard[HomeWizardConfigEntry]:
    """Whether ``entry`` is a HomeWizard device's."""
    return not is_cloud_entry(entry) and not is_iammeter_local_entry(entry)


async def async_create_cloud_runtime(hass: HomeAssistant, entry: CloudConfigEntry) -> CloudRuntime:
    """The coordinator of an account (from its stored reading) and its history jobs.

    The history writes into the recorder's statistics: without the recorder there is none.
    """
    coordinator = await async_create_cloud_coordinator(hass, entry)
    history = CloudHistory(hass, coordinator) if "recorder" in hass.config.components else None
    return CloudRuntime(coordinator, history)
