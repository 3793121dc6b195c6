"""Checks of single values a HomeWizard device sends, shared by the API v1 and v2 clients.

Each check returns the value when it is one a meter could report, else None ("not reported").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .model import PHASES, TARIFFS, Value, phase_key, vendor_text

type Check = Callable[[object], Value | None]

# Bound on any number: a larger value is a glitch (or 1e308), never a real reading.
MAX_NUMBER: Final = 1e9


def in_range(raw: object, low: float, high: float) -> int | float | None:
    """``raw`` when it is a number from ``low`` to ``high``."""
    # bool is an int; NaN and ±Infinity fail the comparison
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return raw if low <= raw <= high else None


def signed_number(raw: object) -> Value | None:
    """A number of either sign within ``MAX_NUMBER``."""
    return in_range(raw, -MAX_NUMBER, MAX_NUMBER)


def unsigned_number(raw: object) -> Value | None:
    """A number from 0 to ``MAX_NUMBER``."""
    return in_range(raw, 0, MAX_NUMBER)


def factor_number(raw: object) -> Value | None:
    """A power factor, -1 to 1."""
    return in_range(raw, -1, 1)


def percent_number(raw: object) -> Value | None:
    """A percentage, 0 to 100."""
    return in_range(raw, 0, 100)


def count_number(raw: object) -> Value | None:
    """A whole number of events or things, 0 or more."""
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None


def tariff_number(raw: object) -> Value | None:
    """A tariff number, 1 to 4."""
    return raw if not isinstance(raw, bool) and isinstance(raw, int) and raw in TARIFFS else None


def text_value(raw: object) -> Value | None:
    """Valid vendor text (``vendor_text``)."""
    return vendor_text(raw)


def smart_meter_id(raw: object) -> Value | None:
    """Return the smart meter id: hex-encoded ASCII on DSMR meters, decoded if printable."""
    if (text := vendor_text(raw)) is None:
        return None
    try:
        decoded = bytes.fromhex(text).decode("ascii")
    except ValueError:
        return text
    return vendor_text(decoded) or text


def switch_state(raw: object) -> Value | None:
    """A setting that is on or off (a JSON boolean)."""
    return raw if isinstance(raw, bool) else None


# The check of each electrical quantity of the reading (a total and, by ``phase_key``, per phase).
ELECTRICAL_CHECKS: Final[dict[str, Check]] = {
    "power_w": signed_number,
    "voltage_v": signed_number,
    "current_a": signed_number,
    "power_factor": factor_number,
    "frequency_hz": signed_number,
    "apparent_power_va": signed_number,
    "reactive_power_var": signed_number,
    "apparent_current_a": signed_number,
    "reactive_current_a": signed_number,
}


def electrical_fields(prefix: str) -> dict[str, tuple[str, Check]]:
    """Vendor key -> (canonical key, check) of every electrical quantity and voltage event.

    The quantities of ``ELECTRICAL_CHECKS`` as a total and per phase, named ``prefix`` + their
    canonical key (v1 says ``active_power_l1_w``, v2 ``power_l1_w``); the voltage sags and swells
    per phase, named as their canonical key in both.
    """
    fields: dict[str, tuple[str, Check]] = {}
    for quantity, check in ELECTRICAL_CHECKS.items():
        for key in (quantity, *(phase_key(quantity, phase) for phase in PHASES)):
            fields[prefix + key] = (key, check)
    for quantity in ("voltage_sag_count", "voltage_swell_count"):
        for phase in PHASES:
            fields[phase_key(quantity, phase)] = (phase_key(quantity, phase), count_number)
    return fields
