"""Shared fixtures: Home Assistant with the integration, fake devices on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
import logging
from typing import Any, Protocol
from unittest.mock import PropertyMock, patch

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import (
    ATTR_ENTITY_ID,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_USERNAME,
    EntityCategory,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
from homeassistant.util.read_only_dict import ReadOnlyDict
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.syrupy import (
    HomeAssistantSnapshotExtension,
    HomeAssistantSnapshotSerializer,
)
from syrupy.assertion import SnapshotAssertion

# Import the integration before Home Assistant's loader looks for custom_components elsewhere.
from custom_components.meter_hub.compat import REACTIVE_ENERGY
from custom_components.meter_hub.const import (
    CONF_ACCOUNT_ID,
    CONF_API_VERSION,
    CONF_NET_METERING,
    CONF_PRODUCT_TYPE,
    CONF_REFRESH_TOKEN,
    CONF_SERIAL,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    CONF_VENDOR,
    DOMAIN,
    SOURCE_CLOUD,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from simulator.homewizard import FakeHomeWizard
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.iammeter import DEFAULT_START, VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud
from simulator.iammeter_local import FakeIamMeter


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/meter_hub in every test."""


@pytest.fixture(autouse=True)
def quiet_sqlalchemy() -> Iterator[None]:
    """The recorder's database plugin logs every SQL statement (at INFO): thousands, and slow."""
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


class _UsageReports(logging.Handler):
    """Home Assistant's reports of an integration's use of a deprecated or wrong API that name
    Meter Hub ("Detected that custom integration 'meter_hub' ... will stop working in ...")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if f"integration '{DOMAIN}'" in message:
            self.reports.append(message)


@pytest.fixture(autouse=True)
def no_usage_report_names_meter_hub() -> Iterator[None]:
    """Fail every test in which Home Assistant reports Meter Hub's use of an API: each such
    report names the release that stops supporting it."""
    handler = _UsageReports()
    logger = logging.getLogger("homeassistant.helpers.frame")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert handler.reports == []


# The fields of an entity registry entry in the oldest Home Assistant release Meter Hub supports.
# Later releases add their own (2026.2: ``object_id_base``, ``suggested_object_id``); a snapshot
# of those would differ from leg to leg.
_ENTITY_ENTRY_FIELDS = frozenset(
    [
        "aliases",
        "area_id",
        "capabilities",
        "config_entry_id",
        "config_subentry_id",
        "device_class",
        "device_id",
        "disabled_by",
        "domain",
        "entity_category",
        "entity_id",
        "has_entity_name",
        "hidden_by",
        "icon",
        "id",
        "labels",
        "name",
        "options",
        "original_device_class",
        "original_icon",
        "original_name",
        "platform",
        "previous_unique_id",
        "supported_features",
        "translation_key",
        "unique_id",
        "unit_of_measurement",
    ]
)


class _ReactiveEnergy:
    """How the reactive energy device class shows in a snapshot of a release that has it."""

    def __repr__(self) -> str:
        return "<SensorDeviceClass.REACTIVE_ENERGY: 'reactive_energy'>"


def _without_reactive_energy_class(unit: object, device_class: object) -> bool:
    """A kvarh counter on a release before 2025.6 (no reactive energy device class yet)."""
    return REACTIVE_ENERGY is None and unit == "kvarh" and device_class is None


class _SnapshotSerializer(HomeAssistantSnapshotSerializer):
    """Home Assistant's serializer, with what every leg has: the entity registry fields of the
    oldest release, and the reactive energy device class (2025.6) shown as the later ones have it.
    Drop the latter when the minimum is >= 2025.6."""

    @classmethod
    def _serializable_entity_registry_entry(cls, data: er.RegistryEntry) -> Any:
        serialized = super()._serializable_entity_registry_entry(data)
        for field in set(serialized) - _ENTITY_ENTRY_FIELDS:
            del serialized[field]
        # Later releases keep the aliases in order, a marker standing for the entity's own name.
        serialized["aliases"] = {alias for alias in data.aliases if isinstance(alias, str)}
        if data.capabilities is not None:  # keys as text, as for the state attributes below
            serialized["capabilities"] = {
                str(key): value for key, value in data.capabilities.items()
            }
        if _without_reactive_energy_class(data.unit_of_measurement, data.original_device_class):
            serialized["original_device_class"] = _ReactiveEnergy()
        return serialized

    @classmethod
    def _serializable_state(cls, data: State) -> Any:
        serialized = super()._serializable_state(data)
        # Later releases name some attributes by a StrEnum member: the same text everywhere.
        attributes = {str(key): value for key, value in serialized["attributes"].items()}
        unit = attributes.get("unit_of_measurement")
        if _without_reactive_energy_class(unit, attributes.get("device_class")):
            attributes["device_class"] = "reactive_energy"
        serialized["attributes"] = ReadOnlyDict(attributes)
        return serialized


class _SnapshotExtension(HomeAssistantSnapshotExtension):
    serializer_class = _SnapshotSerializer


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in tests/snapshots, the same on every leg (the oldest plugin release falls back
    to syrupy's own ``__snapshots__`` folder otherwise)."""
    return snapshot.use_extension(_SnapshotExtension)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create every entity enabled, also those the integration disables by default."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


def meter_device(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry | None:
    """Meter Hub's device with ``identifier`` (a serial or an external meter's id), if any.

    The same on every leg: Home Assistant 2026.9 refuses ``DeviceRegistry.async_get_device`` when
    test code calls it (identifiers are unique within a config entry only), and the lookups that
    replace it do not exist before 2026.8; the devices of each entry are listed alike everywhere.
    """
    registry = dr.async_get(hass)
    found = {
        device.id: device
        for entry in hass.config_entries.async_entries(DOMAIN)
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, identifier) in device.identifiers
    }
    assert len(found) <= 1, f"{len(found)} devices have the identifier {identifier}"
    return next(iter(found.values()), None)


@pytest.fixture
def device_profile() -> str:
    """The HomeWizard device the fake serves; parametrize to change it."""
    return "HWE-P1"


@pytest.fixture
async def homewizard(socket_enabled: None, device_profile: str) -> AsyncIterator[FakeHomeWizard]:
    """A fake HomeWizard device on 127.0.0.1."""
    fake = FakeHomeWizard(device_profile)
    await fake.start()
    yield fake
    await fake.stop()


def local_entry(
    fake: FakeHomeWizard | FakeHomeWizardV2, *, v2_token: str | None = None, **options: Any
) -> MockConfigEntry:
    """A config entry of the fake HomeWizard device (API v2 with ``v2_token``)."""
    v2 = {} if v2_token is None else {CONF_API_VERSION: 2, CONF_TOKEN: v2_token}
    return MockConfigEntry(
        domain=DOMAIN,
        title=fake.device.get("product_name", "HomeWizard"),
        unique_id=fake.device["serial"],
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: fake.host,
            CONF_SERIAL: fake.device["serial"],
            CONF_PRODUCT_TYPE: fake.device["product_type"],
            **v2,
        },
        options=options,
    )


@pytest.fixture
async def local_setup(hass: HomeAssistant, homewizard: FakeHomeWizard) -> MockConfigEntry:
    """The fake device set up as a config entry."""
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


type MakeFake = Callable[..., Awaitable[FakeHomeWizard]]


@pytest.fixture
async def make_fake(socket_enabled: None) -> AsyncIterator[MakeFake]:
    """Start more fake devices: ``await make_fake("HWE-SKT", port=0, serial=None)``."""
    fakes: list[FakeHomeWizard] = []

    async def start(
        profile: str = "HWE-P1", *, port: int = 0, serial: str | None = None
    ) -> FakeHomeWizard:
        fake = FakeHomeWizard(profile)
        if serial is not None:
            fake.device["serial"] = serial
        await fake.start(port)
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        await fake.stop()


async def async_setup_local(
    hass: HomeAssistant, fake: FakeHomeWizard, **options: Any
) -> MockConfigEntry:
    """Set up an entry of ``fake`` with ``options``; it must load."""
    entry = local_entry(fake, **options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def async_setup_iammeter_local(
    hass: HomeAssistant, fake: FakeIamMeter, **data: Any
) -> MockConfigEntry:
    """Set up an entry of the IAMMETER meter ``fake`` as the flow makes it (more ``data``: the
    credentials); it must load."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"IAMMETER {fake.shape.model}",
        unique_id=fake.serial,
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_VENDOR: VENDOR_IAMMETER,
            CONF_HOST: fake.host,
            CONF_SERIAL: fake.serial,
            CONF_NET_METERING: fake.net_metering,
            **data,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def async_poll(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 5
) -> None:
    """Let ``seconds`` pass and run every poll that falls due, HTTP round trips included."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    # Scheduled polls run as background tasks; wait for them, not only for the timers.
    await hass.async_block_till_done(wait_background_tasks=True)


# --- IAMMETER cloud -----------------------------------------------------------------------------


@pytest.fixture
async def cloud(
    socket_enabled: None, freezer: FrozenDateTimeFactory
) -> AsyncIterator[FakeIamMeterCloud]:
    """A fake IAMMETER cloud on 127.0.0.1 on Home Assistant's frozen clock.

    Time starts at the vendor document's metersdata example; move it with ``freezer`` (the fake
    and Home Assistant then agree on the time).
    """
    freezer.move_to(DEFAULT_START)
    fake = FakeIamMeterCloud(clock=dt_util.utcnow)
    await fake.start()
    yield fake
    await fake.stop()


def cloud_entry(
    cloud: FakeIamMeterCloud,
    login: tuple[str, str] = VENDOR_EXAMPLE_LOGIN,
    *,
    token: str | None = None,
    **options: Any,
) -> MockConfigEntry:
    """A config entry of an account of the fake cloud, with a valid token (no login call)."""
    username, password = login
    account_id = str(cloud.account(username).account_id)
    return MockConfigEntry(
        domain=DOMAIN,
        title=username,
        unique_id=account_id,
        data={
            CONF_SOURCE: SOURCE_CLOUD,
            CONF_SERVER: cloud.url,
            CONF_USERNAME: username,
            CONF_PASSWORD: password,
            CONF_ACCOUNT_ID: account_id,
            CONF_TOKEN: token if token is not None else cloud.issue_token(username),
            CONF_REFRESH_TOKEN: "fake-refresh-token",
        },
        options=options,
    )


async def async_setup_cloud(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    login: tuple[str, str] = VENDOR_EXAMPLE_LOGIN,
    **options: Any,
) -> MockConfigEntry:
    """Set up an entry of an account of the fake cloud with ``options``; it must load."""
    entry = cloud_entry(cloud, login, **options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


# --- IAMMETER meters on the local network -------------------------------------------------------

type StartMeter = Callable[..., Awaitable[FakeIamMeter]]


class _Fake(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


async def started[F: _Fake](make: Callable[..., F]) -> AsyncIterator[Callable[..., Awaitable[F]]]:
    """For a fixture: a function that makes and starts a fake (``make``'s arguments), every fake
    it started stopped at the end."""
    fakes: list[F] = []

    async def start(*args: Any, **kwargs: Any) -> F:
        fake = make(*args, **kwargs)
        await fake.start()
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session, for the API clients' own tests."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def start_meter(socket_enabled: None) -> AsyncIterator[StartMeter]:
    """Start fake IAMMETER meters: ``await start_meter("WEM3080T-NEM", serial=...)``."""
    async for start in started(FakeIamMeter):
        yield start


# --- controls -----------------------------------------------------------------------------------


def entity_of(hass: HomeAssistant, domain: str, serial: str, key: str) -> str | None:
    """The entity id of the ``domain`` entity of ``key`` on device ``serial``, if it exists."""
    return er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{serial}_{key}")


def categories_of(hass: HomeAssistant, *entity_ids: str | None) -> set[EntityCategory | None]:
    """The entity categories of entities that must exist."""
    registry = er.async_get(hass)
    entries = [registry.async_get(entity_id or "") for entity_id in entity_ids]
    assert None not in entries, entity_ids
    return {entry.entity_category for entry in entries if entry is not None}


def state_of(hass: HomeAssistant, entity_id: str | None) -> str:
    """The state of an entity that must exist."""
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def async_call(
    hass: HomeAssistant, domain: str, service: str, entity_id: str | None, **data: object
) -> None:
    """Call ``domain.service`` on ``entity_id`` and wait for it (its errors are raised)."""
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )
