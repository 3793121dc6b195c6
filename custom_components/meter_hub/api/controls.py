"""What a device can be told to do, whatever its vendor or API version.

The entities of the switch, number and button platforms call a ``DeviceControls`` and read the
result back from the next reading; each client (HomeWizard API v1 now, v2 later) implements it.
A device names the controls it has in ``MeterInfo.controls``. No Home Assistant imports.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Control(StrEnum):
    """A control a device may have."""

    POWER = "power"
    SWITCH_LOCK = "switch_lock"
    BRIGHTNESS = "brightness"
    IDENTIFY = "identify"
    CLOUD = "cloud"


# The reading key each control's state is reported under (``api/model.py``'s CONTROL_KEYS).
STATE_KEYS: dict[str, str] = {
    Control.POWER: "switch_on",
    Control.SWITCH_LOCK: "switch_lock",
    Control.BRIGHTNESS: "brightness",
    Control.CLOUD: "cloud_enabled",
}


class DeviceControls(Protocol):
    """Writes to a device; each raises the client's own errors when the device refuses."""

    async def set_power(self, on: bool) -> None:
        """Switch the relay on or off."""

    async def set_switch_lock(self, locked: bool) -> None:
        """Lock the relay on (the button and the app cannot switch it) or unlock it."""

    async def set_brightness(self, percent: int) -> None:
        """Set the brightness of the status light, 0-100 %."""

    async def identify(self) -> None:
        """Let the status light blink for a few seconds."""

    async def set_cloud(self, enabled: bool) -> None:
        """Allow or forbid the device to talk to its vendor's cloud."""
