"""The call budget: a ledger that refuses any IAMMETER cloud call that would break a limit.

The vendor limits its API per client IP, account or meter, "hourly" and "daily", and past a
limit "the API will return nothing". This ledger counts our own calls in rolling windows: a
rolling hour never holds more calls than a calendar hour allows, so the ledger stays within the
limits whichever of the two readings the vendor uses.

It has no storage of its own: ``to_dict()`` gives a JSON-serialisable dict and ``from_dict()``
rebuilds the ledger from it, so the Home Assistant layer keeps it in its ``Store`` and a restart
keeps every limit. One ledger can serve several accounts (the login limit is per IP, so every
account of one Home Assistant shares the ``LOGIN_KEY``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

STORAGE_VERSION: Final = 1


class CallKind(StrEnum):
    """A counted kind of call; the value is the name used in the stored dict."""

    LOGIN = "login"
    METERSDATA = "metersdata"
    METERDATA = "meterdata"  # meterdata and meterdata2 share one count
    POWER_ANALYSIS = "powerAnalysis"
    OFFLINE_ANALYSIS = "offlineAnalysis"
    METERDATALIST = "meterdatalist"  # meterdatalist and meterdatalist2 share one count
    ENERGYHISTORY = "energyhistory"


LOGIN_KEY: Final = "login"
"""The key of ``CallKind.LOGIN``: the vendor counts logins per client IP, not per account."""


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``calls`` calls in any rolling ``period``."""

    calls: int
    period: timedelta


_MINUTE: Final = timedelta(minutes=1)
_HOUR: Final = timedelta(hours=1)
_DAY: Final = timedelta(days=1)

LIMITS: Final[Mapping[CallKind, tuple[Window, ...]]] = {
    # Documented by the vendor: login per IP, metersdata per account, the others per SN.
    CallKind.LOGIN: (Window(5, _HOUR), Window(30, _DAY)),
    CallKind.METERSDATA: (Window(1, 5 * _MINUTE),),
    CallKind.METERDATA: (Window(12, _HOUR),),
    CallKind.POWER_ANALYSIS: (Window(5, _DAY),),
    CallKind.OFFLINE_ANALYSIS: (Window(5, _DAY),),
    # Not documented. Each call returns up to 2000 points (history) or 168 hours (energy), so we
    # keep them well below the documented 12/hour of meterdata: a full backfill of one SN takes
    # two meterdatalist calls, keeping a place's energy current takes about one call an hour.
    CallKind.METERDATALIST: (Window(4, _HOUR), Window(24, _DAY)),  # per SN
    CallKind.ENERGYHISTORY: (Window(4, _HOUR), Window(48, _DAY)),  # per place id
}


class BudgetExceeded(Exception):
    """The call would break a limit, or the kind is backing off after a rate-limited answer."""

    def __init__(self, kind: CallKind, key: str, retry_at: datetime) -> None:
        """Store what was refused and when it is allowed again."""
        super().__init__(
            f"{kind} for {key} refused by the call budget until {retry_at.isoformat()}"
        )
        self.kind = kind
        self.key = key
        self.retry_at = retry_at


type _Slot = tuple[CallKind, str]


class CallBudget:
    """Rolling-window ledger of calls per (kind, key), plus back-offs after rate-limited answers.

    ``now`` must return timezone-aware datetimes.
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        """Start an empty ledger."""
        self._now = now
        self._calls: dict[_Slot, list[datetime]] = {}
        self._back_off: dict[_Slot, datetime] = {}

    def next_allowed(self, kind: CallKind, key: str) -> datetime:
        """The earliest time the call is allowed: now if it is allowed now."""
        now = self._now()
        allowed = max(now, self._back_off.get((kind, key), now))
        times = self._calls.get((kind, key), [])
        for window in LIMITS[kind]:
            recent = times[bisect.bisect_right(times, now - window.period) :]
            if len(recent) >= window.calls:
                # The oldest calls must leave the window until one fewer than the limit remain.
                allowed = max(allowed, recent[len(recent) - window.calls] + window.period)
        return allowed

    def check(self, kind: CallKind, key: str) -> None:
        """Raise ``BudgetExceeded`` if the call is not allowed now."""
        retry_at = self.next_allowed(kind, key)
        if retry_at > self._now():
            raise BudgetExceeded(kind, key, retry_at)

    def spend(self, kind: CallKind, key: str) -> None:
        """Record a call made now (made means sent: an answer of any kind counts)."""
        bisect.insort(self._calls.setdefault((kind, key), []), self._now())
        self._prune()

    def acquire(self, kind: CallKind, key: str) -> None:
        """``check`` then ``spend``: call this right before sending the request."""
        self.check(kind, key)
        self.spend(kind, key)

    def back_off(self, kind: CallKind, key: str, until: datetime | None = None) -> None:
        """Refuse this kind for this key until ``until`` (after a rate-limited answer).

        Without ``until`` it waits out the kind's longest window: the vendor does not say which
        of its limits was hit, and every call in between could count against it again.
        """
        if until is None:
            until = self._now() + max(window.period for window in LIMITS[kind])
        slot = (kind, key)
        self._back_off[slot] = max(until, self._back_off.get(slot, until))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the ledger (pruned)."""
        self._prune()
        calls: dict[str, dict[str, list[str]]] = {}
        for (kind, key), times in self._calls.items():
            calls.setdefault(kind.value, {})[key] = [time.isoformat() for time in times]
        back_off: dict[str, dict[str, str]] = {}
        for (kind, key), until in self._back_off.items():
            back_off.setdefault(kind.value, {})[key] = until.isoformat()
        return {"version": STORAGE_VERSION, "calls": calls, "back_off": back_off}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], now: Callable[[], datetime]) -> CallBudget:
        """Rebuild a ledger saved with ``to_dict``; kinds this version does not know are skipped.

        Raises ``ValueError`` when ``data`` is not a ledger of this storage version.
        """
        budget = cls(now)
        try:
            if data["version"] != STORAGE_VERSION:
                raise ValueError(
                    f"call budget storage version {data['version']!r} is not supported"
                )
            for kind, key, times in _entries(data["calls"]):
                budget._calls[kind, key] = sorted(_aware(time) for time in times)
            for kind, key, until in _entries(data["back_off"]):
                budget._back_off[kind, key] = _aware(until)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"malformed call budget: {err!r}") from err
        budget._prune()
        return budget

    def _prune(self) -> None:
        """Forget calls older than their kind's longest window and back-offs that are over."""
        now = self._now()
        for (kind, key), times in list(self._calls.items()):
            horizon = now - max(window.period for window in LIMITS[kind])
            del times[: bisect.bisect_right(times, horizon)]
            if not times:
                del self._calls[kind, key]
        for slot, until in list(self._back_off.items()):
            if until <= now:
                del self._back_off[slot]


def _entries(section: Mapping[str, Mapping[str, Any]]) -> list[tuple[CallKind, str, Any]]:
    """The (kind, key, value) triples of a stored section, skipping unknown kinds."""
    known = {kind.value: kind for kind in CallKind}
    return [
        (known[name], str(key), value)
        for name, per_key in section.items()
        if name in known
        for key, value in per_key.items()
    ]


def _aware(text: str) -> datetime:
    """Parse a stored ISO time; it must carry its UTC offset."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"stored time {text!r} has no UTC offset")
    return parsed
