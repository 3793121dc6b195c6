"""Fixtures of the HomeWizard API v2 tests: the simulator's CA and the integration's trust."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import ssl
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
import pytest

from custom_components.meter_hub.api.homewizard.tls import create_naming_context, create_ssl_context
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

# The user Home Assistant is on the fake devices (``device``).
USER = "local/home-assistant"


@pytest.fixture(scope="module")
def authority() -> Iterator[SimulatorAuthority]:
    """The simulator's CA, made once per test module."""
    ca = SimulatorAuthority()
    yield ca
    ca.cleanup()


@pytest.fixture
def trust(authority: SimulatorAuthority) -> ssl.SSLContext:
    """The test seam: a client context that trusts the simulator's CA, not HomeWizard's."""
    return create_ssl_context(authority.ca_file)


@pytest.fixture
def integration_trusts_the_simulator(
    authority: SimulatorAuthority, trust: ssl.SSLContext
) -> Iterator[None]:
    """The integration's SSL contexts (flow and coordinator) trust the simulator's CA."""
    naming_context = create_naming_context(authority.ca_file)

    async def simulator_context(*, naming: bool = False) -> ssl.SSLContext:
        return naming_context if naming else trust

    with (
        patch("custom_components.meter_hub.flow_pairing.shared_ssl_context", simulator_context),
        patch(
            "custom_components.meter_hub.local_coordinator.shared_ssl_context", simulator_context
        ),
    ):
        yield


@pytest.fixture
def refused_handshakes(hass: HomeAssistant) -> None:
    """A client that refuses the device's certificate, or speaks plain HTTP to it (the host form
    asks API v1 first), makes the device's side of the TLS handshake fail: asyncio (Python
    3.13.0, the minimum leg) reports that as an error of the loop, which is the test's
    expectation here, not a fault.
    """
    loop = hass.loop
    report = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(
            context.get("exception"), ConnectionResetError | ssl.SSLError
        ) and "incoming" in str(context.get("message")):
            return
        if report is not None:
            report(loop, context)
        else:  # pragma: no cover - Home Assistant's test loop always has a handler
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


@pytest.fixture
async def device(
    socket_enabled: None, authority: SimulatorAuthority, device_profile: str
) -> AsyncIterator[FakeHomeWizardV2]:
    """A fake v2 device of ``device_profile`` (the root conftest's) with the user ``USER``."""
    fake = FakeHomeWizardV2(authority, device_profile)
    await fake.start()
    fake.users[USER] = "0123456789ABCDEF0123456789ABCDEF"
    yield fake
    await fake.stop()
