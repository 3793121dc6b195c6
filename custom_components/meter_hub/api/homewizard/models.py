"""HomeWizard devices: what a device is, and what each product can do per API version.

``HomeWizardDevice`` (``/api``), the products' names, their controls per API version, which
firmware has API v2 and which products control a Plug-In Battery group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from custom_components.meter_hub.api.controls import Control
from custom_components.meter_hub.api.model import BATTERY_MODES, MeterInfo

MANUFACTURER: Final = "HomeWizard"


MODEL_NAMES: Final = {
    "HWE-P1": "P1 Meter",
    "HWE-SKT": "Energy Socket",
    "HWE-WTR": "Watermeter",
    "HWE-KWH1": "kWh Meter 1-phase",
    "HWE-KWH3": "kWh Meter 3-phase",
    "SDM230-wifi": "kWh Meter 1-phase (SDM230)",
    "SDM630-wifi": "kWh Meter 3-phase (SDM630)",
    "HWE-DSP": "Energy Display",
    "HWE-BAT": "Plug-In Battery",
}


# Products with a single register that they report as tariff 1: their T1 is the total.
SINGLE_TARIFF_PRODUCTS: Final = frozenset(
    {"HWE-SKT", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"}
)


# What each product can be told to do (vendor docs: state.mdx, system.mdx, identify.mdx). Only
# the socket has ``/api/v1/state``; the Energy Display has none of these endpoints.
_SOCKET_CONTROLS: Final = frozenset({Control.POWER, Control.SWITCH_LOCK, Control.BRIGHTNESS})


_SYSTEM_CONTROLS: Final = frozenset({Control.IDENTIFY, Control.CLOUD})


PRODUCT_CONTROLS: Final[dict[str, frozenset[Control]]] = {
    "HWE-SKT": _SOCKET_CONTROLS | _SYSTEM_CONTROLS,
    **dict.fromkeys(
        ("HWE-P1", "HWE-WTR", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"),
        _SYSTEM_CONTROLS,
    ),
}


# The same over API v2 (v2 docs: system.mdx, batteries.mdx): the kWh meters have no status light
# and no identify; the Plug-In Battery's cloud connection is read-only and, for safety, it cannot
# be rebooted; the P1 and kWh meters control the Plug-In Batteries (an entity each only where the
# reading has its state: the fields came with API 2.1.0 to 2.3.0).
_BATTERY_CONTROLS: Final = frozenset(
    {
        Control.BATTERY_MODE,
        Control.BATTERY_CHARGE,
        Control.BATTERY_DISCHARGE,
        Control.BATTERY_CHARGE_TO_FULL,
    }
)


_V2_METER_CONTROLS: Final = frozenset({Control.CLOUD, Control.REBOOT}) | _BATTERY_CONTROLS


V2_PRODUCT_CONTROLS: Final[dict[str, frozenset[Control]]] = {
    "HWE-P1": _V2_METER_CONTROLS | {Control.IDENTIFY, Control.BRIGHTNESS},
    **dict.fromkeys(("HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"), _V2_METER_CONTROLS),
    "HWE-BAT": frozenset({Control.IDENTIFY, Control.BRIGHTNESS}),
}


# The battery modes of API 2.1.0 and later, and the API version that added ``predictive``.
_LEGACY_BATTERY_MODES: Final = ("zero", "to_full", "standby")


PREDICTIVE_SINCE: Final = (2, 3)


# The socket's status light: 0..255 on the wire, percent in the reading.
BRIGHTNESS_MAX: Final = 255


@dataclass(frozen=True, slots=True)
class HomeWizardDevice:
    """What ``/api`` says about the device."""

    product_type: str
    product_name: str | None
    serial: str
    firmware_version: str | None
    api_version: str
    host: str
    scheme: str = "http"

    @property
    def model_name(self) -> str:
        """Human model name of the product type (the product name for an unknown type)."""
        return MODEL_NAMES.get(self.product_type) or self.product_name or self.product_type

    @property
    def meter_info(self) -> MeterInfo:
        """The device as a meter of the normalised model."""
        return MeterInfo(
            serial=self.serial,
            manufacturer=MANUFACTURER,
            model=self.model_name,
            model_id=self.product_type,
            sw_version=self.firmware_version,
            configuration_url=f"{self.scheme}://{self.host}",
            controls=tuple(sorted(self.controls)),
            battery_modes=self.battery_modes if Control.BATTERY_MODE in self.controls else (),
        )

    @property
    def controls(self) -> frozenset[Control]:
        """What the device can be told to do over its API version."""
        table = PRODUCT_CONTROLS if self.api_version == "v1" else V2_PRODUCT_CONTROLS
        return table.get(self.product_type, frozenset())

    @property
    def battery_modes(self) -> tuple[str, ...]:
        """The modes of the batteries it controls that its API version lists (batteries.mdx)."""
        major, _, rest = self.api_version.partition(".")
        minor = rest.partition(".")[0]
        version = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)
        if version >= PREDICTIVE_SINCE:
            return BATTERY_MODES
        return _LEGACY_BATTERY_MODES


# The product type in a device certificate's name; legacy names, the vendor's table.
CERTIFICATE_TYPES: Final = {
    "HWE-P1": "p1dongle",
    "HWE-SKT": "energysocket",
    "HWE-DSP": "display",
    "HWE-KWH1": "energymeter",
    "HWE-KWH3": "energymeter",
    "SDM230-wifi": "energymeter",
    "SDM630-wifi": "energymeter",
    "HWE-WTR": "watermeter",
    "HWE-BAT": "battery",
}


# Devices set up with API v2, and the firmware from which they have it (``None``: always); the
# others stay on v1 until HomeWizard releases their v2.
V2_FIRMWARE: Final[dict[str, int | None]] = {
    "HWE-P1": 6,
    "HWE-KWH1": 5,
    "HWE-KWH3": 5,
    "SDM230-wifi": 5,
    "SDM630-wifi": 5,
    "HWE-BAT": None,
}


# Devices that control Plug-In Batteries (``/api/batteries``, API 2.1.0 and later).
BATTERY_CONTROLLERS: Final = frozenset(
    {"HWE-P1", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"}
)


def supports_api_v2(product_type: str, firmware_version: str | None) -> bool:
    """Whether a device of ``product_type`` with that firmware speaks API v2."""
    if product_type not in V2_FIRMWARE:
        return False
    first = V2_FIRMWARE[product_type]
    major = (firmware_version or "").partition(".")[0]
    return first is None or (major.isdigit() and int(major) >= first)
