"""Actions of IAMMETER cloud meters: power analysis, offline analysis, meter history.

Each action targets one meter device and returns the cloud's answer. The cloud allows 5 power
and 5 offline analyses per meter and day; the call budget refuses a sixth with an error that
says when the action works again. Every action spends the account's daily budget of cloud calls
(the history requests are shared with the energy statistics' backfill): only administrators may
call them, and only for dates the cloud can have data of.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util import dt as dt_util

from .api.budget import BudgetExceeded, CallKind
from .api.iammeter import (
    MAX_HISTORY_POINTS,
    HistoryRow,
    IamMeterError,
    RateLimited,
    max_history_days,
)
from .cloud_coordinator import CloudCoordinator
from .compat import device_config_entry_ids, vol
from .const import DOMAIN
from .runtime import is_cloud_entry

SERVICE_POWER_ANALYSIS: Final = "power_analysis"
SERVICE_OFFLINE_ANALYSIS: Final = "offline_analysis"
SERVICE_METER_HISTORY: Final = "meter_history"

ATTR_DEVICE_ID: Final = "device_id"
ATTR_START_DATE: Final = "start_date"
ATTR_END_DATE: Final = "end_date"
ATTR_INTERVAL: Final = "interval"

DEFAULT_HISTORY_INTERVAL_S: Final = 300
# IAMMETER's cloud started in 2015: no meter has data of an earlier day.
FIRST_DATE: Final = date(2015, 1, 1)
# The last day with data is today in the account's time zone, which may be a day ahead of Home
# Assistant's: tomorrow (local) is the latest date an action accepts.
DAYS_AHEAD: Final = 1
RATE_LIMIT_BACK_OFF: Final = timedelta(hours=1)

_RANGE_FIELDS: Final = {
    vol.Required(ATTR_DEVICE_ID): cv.string,
    vol.Optional(ATTR_START_DATE): cv.date,
    vol.Optional(ATTR_END_DATE): cv.date,
}
POWER_ANALYSIS_SCHEMA: Final = vol.Schema(_RANGE_FIELDS)
OFFLINE_ANALYSIS_SCHEMA: Final = vol.Schema(
    {
        **_RANGE_FIELDS,
        vol.Optional(ATTR_INTERVAL): vol.All(vol.Coerce(int), vol.Range(min=1, max=1440)),
    }
)
METER_HISTORY_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_START_DATE): cv.date,
        vol.Optional(ATTR_END_DATE): cv.date,
        vol.Optional(ATTR_INTERVAL, default=DEFAULT_HISTORY_INTERVAL_S): vol.All(
            vol.Coerce(int), vol.Range(min=60, max=86_400)
        ),
    }
)

# The translation key of the error when the budget refuses a kind of call.
_BUDGET_ERRORS: Final = {
    CallKind.POWER_ANALYSIS: "power_analysis_budget",
    CallKind.OFFLINE_ANALYSIS: "offline_analysis_budget",
    CallKind.METERDATALIST: "history_budget",
}


def _format_time(at: datetime) -> str:
    """Local time, rounded up to the minute (the call is allowed from then on)."""
    local = dt_util.as_local(at)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return local.strftime("%Y-%m-%d %H:%M")


def _meter(hass: HomeAssistant, device_id: str) -> tuple[CloudCoordinator, str]:
    """The coordinator and serial number of an IAMMETER cloud meter device."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    serials = {ident for domain, ident in device.identifiers if domain == DOMAIN}
    for entry_id in device_config_entry_ids(hass, device_id):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"name": entry.title},
            )
        if is_cloud_entry(entry):
            coordinator = entry.runtime_data.coordinator
            for serial in serials & set(coordinator.data or {}):
                return coordinator, serial
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_cloud_meter",
        translation_placeholders={"name": device.name_by_user or device.name or device_id},
    )


async def _async_check_admin(call: ServiceCall) -> None:
    """Only an administrator (or Home Assistant itself, an automation) may spend the budget."""
    if call.context.user_id is None:
        return
    user = await call.hass.auth.async_get_user(call.context.user_id)
    if user is None:
        raise UnknownUser(context=call.context)
    if not user.is_admin:
        raise Unauthorized(context=call.context)


def _range(call: ServiceCall) -> tuple[date | None, date | None]:
    """The call's dates, each between ``FIRST_DATE`` and tomorrow, the end not before the start."""
    start: date | None = call.data.get(ATTR_START_DATE)
    end: date | None = call.data.get(ATTR_END_DATE)
    last = dt_util.now().date() + timedelta(days=DAYS_AHEAD)
    for day in (start, end):
        if day is not None and not FIRST_DATE <= day <= last:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="date_out_of_range",
                translation_placeholders={
                    "date": day.isoformat(),
                    "first": FIRST_DATE.isoformat(),
                    "last": last.isoformat(),
                },
            )
    if start is not None and end is not None and end < start:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="end_before_start",
            translation_placeholders={"start": start.isoformat(), "end": end.isoformat()},
        )
    return start, end


async def _async_call[T](
    coordinator: CloudCoordinator, kind: CallKind, serial: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Make one cloud call through the budget, with translated errors."""
    try:
        await coordinator.budget.async_spend(kind, serial)
    except BudgetExceeded as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=_BUDGET_ERRORS[kind],
            translation_placeholders={"serial": serial, "retry_at": _format_time(err.retry_at)},
        ) from err
    try:
        return await call()
    except RateLimited as err:
        until = dt_util.utcnow() + RATE_LIMIT_BACK_OFF
        await coordinator.budget.async_back_off(kind, serial, until)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="cloud_rate_limited",
            translation_placeholders={"serial": serial, "retry_at": _format_time(until)},
        ) from err
    except IamMeterError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="action_failed",
            translation_placeholders={"serial": serial, "error": str(err)},
        ) from err


def _json(value: object) -> Any:
    """``value`` with dates and times as ISO strings."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


async def _async_power_analysis(call: ServiceCall) -> ServiceResponse:
    await _async_check_admin(call)
    coordinator, serial = _meter(call.hass, call.data[ATTR_DEVICE_ID])
    start, end = _range(call)
    result = await _async_call(
        coordinator,
        CallKind.POWER_ANALYSIS,
        serial,
        lambda: coordinator.client.power_analysis(serial, start, end),
    )
    response: dict[str, Any] = {"serial": serial, **_json(asdict(result))}
    return response


async def _async_offline_analysis(call: ServiceCall) -> ServiceResponse:
    await _async_check_admin(call)
    coordinator, serial = _meter(call.hass, call.data[ATTR_DEVICE_ID])
    start, end = _range(call)
    interval: int | None = call.data.get(ATTR_INTERVAL)
    result = await _async_call(
        coordinator,
        CallKind.OFFLINE_ANALYSIS,
        serial,
        lambda: coordinator.client.offline_analysis(serial, start, end, interval),
    )
    response: dict[str, Any] = {"serial": serial, **_json(asdict(result))}
    return response


def _history_row(row: HistoryRow) -> dict[str, Any]:
    values = {key: value for key, value in row.reading.values.items() if key != "measured_at"}
    return {
        "measured_at": row.measured_at.isoformat(),
        "local_time": None if row.local_time is None else row.local_time.isoformat(),
        # Not "values": in a template, ``row.values`` would be the dict's method.
        "reading": _json(values),
    }


async def _async_meter_history(call: ServiceCall) -> ServiceResponse:
    await _async_check_admin(call)
    coordinator, serial = _meter(call.hass, call.data[ATTR_DEVICE_ID])
    _range(call)
    start: date = call.data[ATTR_START_DATE]
    end: date = call.data.get(ATTR_END_DATE) or start
    interval: int = call.data[ATTR_INTERVAL]
    days = (end - start).days + 1
    if days > (most_days := max_history_days(interval)):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="too_many_points",
            translation_placeholders={
                "points": str(days * 86_400 // interval),
                "max_points": str(MAX_HISTORY_POINTS),
                "interval": str(interval),
                "max_days": str(most_days),
            },
        )
    rows = await _async_call(
        coordinator,
        CallKind.METERDATALIST,
        serial,
        lambda: coordinator.client.meter_data_list(serial, start, end, interval),
    )
    return {
        "serial": serial,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "interval": interval,
        "rows": [_history_row(row) for row in rows],
    }


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, in ``async_setup``)."""
    for name, handler, schema in (
        (SERVICE_POWER_ANALYSIS, _async_power_analysis, POWER_ANALYSIS_SCHEMA),
        (SERVICE_OFFLINE_ANALYSIS, _async_offline_analysis, OFFLINE_ANALYSIS_SCHEMA),
        (SERVICE_METER_HISTORY, _async_meter_history, METER_HISTORY_SCHEMA),
    ):
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.ONLY
        )
