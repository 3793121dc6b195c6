"""One IAMMETER meter, cloud and local: live values from its address, history from the cloud.

A meter of a cloud account keeps its one device and its one set of entities on the cloud entry
(they carry its statistics and the backfill). The entry's options give it an address
(``local_meters``: serial -> host and, if the meter asks for them, its Admin Security
credentials); a poller per address reads the meter every second and its values stand in for the
cloud's while it answers. When it does not (unreachable, 401, 429, not ready), the cloud's values
keep the entities alive at the cloud's pace, and back again; each switch is logged once.

The cloud's counters lag the meter's by minutes, so a switch of source must never look like a
drop (a reset after long enough) or book anything twice: at each switch every counter keeps the
last value given to the entities until the new source's value reaches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import SensorStateClass
from homeassistant.config_entries import ConfigEntry, OperationNotAllowed
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .api.iammeter.local import IamMeterLocalClient, IamMeterLocalError
from .api.model import Reading
from .cloud_coordinator import CloudCoordinator
from .compat import last_stored_state
from .const import (
    CONF_LOCAL_METERS,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_VENDOR,
    DOMAIN,
    IAMMETER_LOCAL_SCAN_INTERVAL,
    LOGGER,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from .coordinator import MeterData, MeterHubData
from .iammeter_local_coordinator import iammeter_local_client
from .sensor import GUARD_KEY
from .sensor_descriptions import SENSORS

if TYPE_CHECKING:
    from .runtime import CloudConfigEntry

# How long the setup of a cloud entry waits for the first answers of its linked meters.
FIRST_READ_S = 3.0
# The keys of cumulative values: the energy dashboard books every change of them.
COUNTER_KEYS = frozenset(
    key
    for key, description in SENSORS.items()
    if description.state_class is SensorStateClass.TOTAL_INCREASING
)


def linked_meters(entry: ConfigEntry) -> dict[str, dict[str, str]]:
    """The local address (and credentials) of each linked meter of a cloud entry, by serial."""
    links: dict[str, dict[str, str]] = entry.options.get(CONF_LOCAL_METERS, {})
    return links


def with_link(
    options: Mapping[str, Any], serial: str, link: dict[str, str] | None
) -> dict[str, Any]:
    """A cloud entry's ``options`` with ``serial`` linked to ``link`` (None: unlinked)."""
    links = dict(options.get(CONF_LOCAL_METERS, {}))
    links.pop(serial, None)
    if link is not None:
        links[serial] = link
    others = {key: value for key, value in options.items() if key != CONF_LOCAL_METERS}
    return {**others, CONF_LOCAL_METERS: links} if links else others


def cloud_entry_of(hass: HomeAssistant, serial: str) -> ConfigEntry | None:
    """The cloud entry whose account has the meter ``serial`` (its device), if one has."""
    registry = dr.async_get(hass)
    for entry in hass.config_entries.async_entries(DOMAIN, include_ignore=False):
        if entry.data.get(CONF_SOURCE, SOURCE_LOCAL) == SOURCE_LOCAL:
            continue
        devices = dr.async_entries_for_config_entry(registry, entry.entry_id)
        if any((DOMAIN, serial) in device.identifiers for device in devices):
            return entry
    return None


def restored_counters(hass: HomeAssistant, serial: str) -> dict[str, float]:
    """The counters of the meter's entities when they were last removed (a restart, a reload).

    The guard's published value where it was stored (also when the entity was unavailable).
    """
    entities = er.async_get(hass)
    found: dict[str, float] = {}
    for key in COUNTER_KEYS:
        entity_id = entities.async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
        if entity_id is None or (stored := last_stored_state(hass, entity_id)) is None:
            continue
        extra = stored.extra_data.as_dict() if stored.extra_data is not None else {}
        guard = extra.get(GUARD_KEY)
        value = guard.get("value") if isinstance(guard, dict) else None
        if isinstance(value, int | float):
            found[key] = float(value)
    return found


@dataclass(slots=True)
class LocalLink:
    """One linked meter: its poller's client, which source it follows, and its counter floors."""

    serial: str
    client: IamMeterLocalClient
    # The last reading of the meter at its address (None: none yet or not answering).
    local: Reading | None = None
    local_at: datetime | None = None
    error: str | None = None
    # The source of the values given to the entities last: "local", "cloud", or "restored" (the
    # counters the entities had when they were last removed, before any source answered).
    source: str | None = None
    # The counters given to the entities last, and those held at their level after a switch.
    given: dict[str, float] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=dict)
    polling: bool = False

    def merged(self, cloud: MeterData) -> MeterData:
        """The meter's data: the local values over the cloud's while the meter answers."""
        source = "cloud" if self.local is None else "local"
        if source != self.source:
            # Each counter stays where it was until the new source reaches it.
            self.floors = dict(self.given) if self.source is not None else {}
            self.source = source
        values = dict(cloud.reading.values)
        expected = cloud.reading.expected
        if self.local is not None:
            values.update(self.local.values)
            expected = tuple(dict.fromkeys((*expected, *self.local.expected)))
        for key in COUNTER_KEYS & values.keys():
            value = values[key]
            if not isinstance(value, int | float):
                continue
            floor = self.floors.get(key)
            if floor is not None and value < floor:
                values[key] = value = floor
            else:
                self.floors.pop(key, None)
            self.given[key] = float(value)
        return MeterData(cloud.info, replace(cloud.reading, values=values, expected=expected))

    def diagnostics(self) -> dict[str, Any]:
        """Where the meter's values come from and why."""
        return {
            CONF_HOST: self.client.host,
            "source": self.source,
            "last_local_reading": self.local_at.isoformat() if self.local_at else None,
            "error": self.error,
            "counters_held": sorted(self.floors),
        }


class IamMeterLinks:
    """The linked meters of one cloud entry, and the data of the entry with their live values."""

    def __init__(self, hass: HomeAssistant, coordinator: CloudCoordinator) -> None:
        """Read each meter the entry's options give an address."""
        self.hass = hass
        self.coordinator = coordinator
        self.links: dict[str, LocalLink] = {}
        for serial, link in linked_meters(coordinator.config_entry).items():
            client = iammeter_local_client(hass, link[CONF_HOST], link)
            given = restored_counters(hass, serial)
            # Whatever source comes first, the counters start where the entities left them.
            self.links[serial] = LocalLink(
                serial, client, source="restored" if given else None, given=given
            )
        self._cloud: MeterHubData = {}
        self._merged: MeterHubData | None = None

    def overlay(self, data: MeterHubData) -> MeterHubData:
        """The entry's data from a cloud poll's (or from the last merged data, kept)."""
        if data is not self._merged:
            self._cloud = data
        self._merged = merged = dict(self._cloud)
        for serial, link in self.links.items():
            if (meter := self._cloud.get(serial)) is not None:
                merged[serial] = link.merged(meter)
        return merged

    def without_cloud(self) -> MeterHubData | None:
        """The entry's data once the cloud's reading is too old, while a linked meter answers.

        Every meter keeps its device with no values of the cloud's (their entities are
        unavailable), and a linked meter that answers its own. None: none answers.
        """
        if all(link.local is None for link in self.links.values()):
            return None
        return {serial: MeterData(meter.info, Reading()) for serial, meter in self._cloud.items()}

    async def async_poll_all(self) -> None:
        """Read every linked meter once (at setup: the entities start with the live values).

        A meter that does not answer within ``FIRST_READ_S`` does not hold up the entry's setup:
        its values are the cloud's until it does.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_READ_S):
                await asyncio.gather(*(self._async_read(link) for link in self.links.values()))
        if self.coordinator.data is not None:
            self.coordinator.data = self.overlay(self.coordinator.data)

    @callback
    def async_start(self) -> None:
        """Poll every linked meter at the interval of local IAMMETER entries."""
        entry = self.coordinator.config_entry
        for link in self.links.values():

            @callback
            def _due(_now: datetime, link: LocalLink = link) -> None:
                if not link.polling and not self.hass.is_stopping:
                    entry.async_create_background_task(
                        self.hass, self._async_poll(link), f"{entry.title} {link.serial} local"
                    )

            entry.async_on_unload(
                async_track_time_interval(
                    self.hass, _due, IAMMETER_LOCAL_SCAN_INTERVAL, cancel_on_shutdown=True
                )
            )

    async def _async_read(self, link: LocalLink) -> None:
        """Read ``link``'s meter; log once when it stops answering and once when it is back."""
        link.polling = True
        try:
            meter = await link.client.monitor(link.serial)
        except IamMeterLocalError as err:
            if link.local is not None or link.error is None:
                LOGGER.info(
                    "IAMMETER meter %s does not answer at %s (%s): its values come from the "
                    "cloud until it does",
                    link.serial,
                    link.client.host,
                    err,
                )
            link.local, link.error = None, str(err) or type(err).__name__
            return
        finally:
            link.polling = False
        if link.local is None and link.error is not None:
            LOGGER.info("IAMMETER meter %s answers at %s again", link.serial, link.client.host)
        link.local, link.local_at, link.error = meter.reading, dt_util.utcnow(), None

    async def _async_poll(self, link: LocalLink) -> None:
        was_live = link.local is not None
        await self._async_read(link)
        coordinator = self.coordinator
        if coordinator.data is None or (not was_live and link.local is None):
            return  # nothing changed: the cloud's values stand
        coordinator.data = self.overlay(coordinator.data)
        # Only this meter's entities hear of it: the others' readings did not change.
        coordinator.updated_serials = frozenset({link.serial})
        try:
            coordinator.async_update_listeners()
        finally:
            coordinator.updated_serials = None

    def diagnostics(self) -> dict[str, Any]:
        """The state of each link (its credentials are not shown)."""
        return {serial: link.diagnostics() for serial, link in self.links.items()}


async def async_setup_links(
    hass: HomeAssistant, entry: CloudConfigEntry, coordinator: CloudCoordinator
) -> None:
    """Give a cloud entry its linked meters, after adopting local entries of its meters."""
    await _async_adopt_local_entries(hass, entry, set(coordinator.data))
    if not linked_meters(entry):
        return
    coordinator.links = links = IamMeterLinks(hass, coordinator)
    await links.async_poll_all()
    links.async_start()


async def _async_adopt_local_entries(
    hass: HomeAssistant, entry: CloudConfigEntry, serials: set[str]
) -> None:
    """Turn local entries of the account's meters into links of ``entry``.

    Their entities and devices move to ``entry`` (the unique ids are the same: entity ids,
    names and statistics stay), their address and credentials become the link's, and the local
    entry is removed: two entries of one meter would count its energy twice.
    """
    local_entries = [
        other
        for other in hass.config_entries.async_entries(DOMAIN, include_ignore=False)
        if other.data.get(CONF_VENDOR) == VENDOR_IAMMETER and other.data[CONF_SERIAL] in serials
    ]
    if not local_entries:
        return
    entities = er.async_get(hass)
    for local in local_entries:
        serial = local.data[CONF_SERIAL]
        link = {
            key: local.data[key]
            for key in (CONF_HOST, CONF_USERNAME, CONF_PASSWORD)
            if key in local.data
        }
        # Home Assistant starts the entries of an integration side by side: a setup of the local
        # entry in progress ends first. Then it is unloaded, so that its entities are free for
        # this entry's platforms.
        async with local.setup_lock:
            pass
        try:
            await hass.config_entries.async_unload(local.entry_id)
        except OperationNotAllowed as err:
            LOGGER.warning("Cannot retire the local entry %s yet: %s", local.title, err)
            continue
        for entity in er.async_entries_for_config_entry(entities, local.entry_id):
            entities.async_update_entity(entity.entity_id, config_entry_id=entry.entry_id)
        hass.config_entries.async_update_entry(
            entry, options=with_link(entry.options, serial, link)
        )
        LOGGER.warning(
            "IAMMETER meter %s is in the cloud account of %s: its local entry %s is now part of "
            "that entry (live values from %s, history from the cloud)",
            serial,
            entry.title,
            local.title,
            link[CONF_HOST],
        )
        await hass.config_entries.async_remove(local.entry_id)
