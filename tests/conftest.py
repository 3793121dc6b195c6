"""Shared fixtures: Home Assistant with the integration, fake devices on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

# Import the integration before Home Assistant's loader looks for custom_components elsewhere.
from custom_components.meter_hub.const import (
    CONF_PRODUCT_TYPE,
    CONF_SERIAL,
    CONF_SOURCE,
    DOMAIN,
    SOURCE_LOCAL,
)
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from simulator.homewizard import FakeHomeWizard


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/meter_hub in every test."""


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


def local_entry(fake: FakeHomeWizard, **options: Any) -> MockConfigEntry:
    """A config entry of the fake HomeWizard device."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=fake.device.get("product_name", "HomeWizard"),
        unique_id=fake.device["serial"],
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: fake.host,
            CONF_SERIAL: fake.device["serial"],
            CONF_PRODUCT_TYPE: fake.device["product_type"],
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
