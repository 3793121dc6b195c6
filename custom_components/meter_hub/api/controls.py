"""What a device can be told to do, whatever its vendor or API version.

The entities of the switch, number, select and button platforms call a ``DeviceControls`` and
read the result back from the next reading (a poll, or the device's push); each client
(HomeWizard API v1 and v2) implements it. A device names the controls it has in
``MeterInfo.controls``; a client refuses a control its API lacks (``Unsupported``), which no
entity asks for. No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol


class Control(StrEnum):
    """A control a device may have."""

    POWER = "power"
    SWITCH_LOCK = "switch_lock"
    BRIGHTNESS = "brightness"
    IDENTIFY = "identify"
    CLOUD = "cloud"
    REBOOT = "reboot"
    # The group of Plug-In Batteries a meter controls.
    BATTERY_MODE = "battery_mode"
    BATTERY_CHARGE = "battery_charge"
    BATTERY_DISCHARGE = "battery_discharge"
    BATTERY_CHARGE_TO_FULL = "battery_charge_to_full"


# The reading key each control's state is reported under (``api/model.py``'s CONTROL_KEYS).
STATE_KEYS: dict[str, str] = {
    Control.POWER: "switch_on",
    Control.SWITCH_LOCK: "switch_lock",
    Control.BRIGHTNESS: "brightness",
    Control.CLOUD: "cloud_enabled",
    Control.BATTERY_MODE: "battery_mode",
    Control.BATTERY_CHARGE: "battery_charge_allowed",
    Control.BATTERY_DISCHARGE: "battery_discharge_allowed",
    Control.BATTERY_CHARGE_TO_FULL: "battery_charge_to_full",
}


def controlled_keys(controls: Iterable[str]) -> frozenset[str]:
    """The reading keys whose state the entities of ``controls`` show (no sensor shows them)."""
    return frozenset(STATE_KEYS[control] for control in controls if control in STATE_KEYS)


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

    async def reboot(self) -> None:
        """Restart the device."""

    async def set_battery_mode(self, mode: str) -> None:
        """Set the control mode of the batteries the device controls."""

    async def allow_battery(
        self, *, charge: bool | None = None, discharge: bool | None = None
    ) -> None:
        """Allow or forbid the batteries to charge or to discharge (None: leave as it is)."""

    async def set_battery_charge_to_full(self, on: bool) -> None:
        """Charge the batteries to full now (then back to the mode before), or stop that."""
