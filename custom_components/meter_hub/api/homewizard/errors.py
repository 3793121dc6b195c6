"""The errors the HomeWizard clients raise (API v1 and v2)."""

from __future__ import annotations

from custom_components.meter_hub.api.transport import loggable


class HomeWizardError(Exception):
    """Base of every error of this client."""


class CannotConnect(HomeWizardError):
    """The device is unreachable, too slow, or answered with an unexpected HTTP status."""


class ApiDisabled(HomeWizardError):
    """The device's "Local API" switch is off (HTTP 403, error id 202)."""


class NotHomeWizard(HomeWizardError):
    """Something answers at the address, but it is not a HomeWizard device with API v1."""


class InvalidPayload(HomeWizardError):
    """``/api/v1/data`` did not return a JSON object."""


class Unsupported(HomeWizardError):
    """The device has no such endpoint (HTTP 404): older firmware, or another product."""


class Rejected(HomeWizardError):
    """The device refused a write (HTTP 400: a value or combination it does not accept)."""


class WrongDevice(HomeWizardError):
    """Another HomeWizard device answers at the address (``serial`` is its serial)."""

    def __init__(self, host: str, serial: str) -> None:
        """Name the device that answers instead."""
        super().__init__(f"another device ({loggable(serial, 40)}) answers at {host}")
        self.serial = serial


class InvalidHost(HomeWizardError):
    """The host the user entered cannot be used (the message says why)."""


class Unauthorized(HomeWizardError):
    """The device refuses the token (HTTP 401 ``user:unauthorized``): pair again."""


class ButtonNotPressed(HomeWizardError):
    """The device creates a user only after its button was pressed (``user:creation-not-enabled``)."""


class NoStorage(HomeWizardError):
    """The device has no room for another user (``user:no-storage``): remove one in the app."""


class UntrustedDevice(HomeWizardError):
    """The certificate at the address is not the HomeWizard certificate of the expected device."""
