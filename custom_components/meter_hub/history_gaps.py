"""The gap ledger of a cloud entry: which times the live polls missed, for which meters.

A poll that succeeds longer after the previous one than two polling intervals opens a *gap*;
the first setup is a gap of the week before, and so is a meter that appears later. The ledger
is kept in the entry's history store, so a gap noted before a restart is filled after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from .const import LOGGER

BACKFILL_WINDOW: Final = timedelta(days=7)
"""How far back a gap is filled (meterdatalist2 at 5 minutes: 6 days per call, two calls)."""
GAP_MARGIN: Final = timedelta(minutes=1)


@dataclass(slots=True)
class Gap:
    """A time without live polls, to backfill for the meters in ``serials``."""

    start: datetime
    end: datetime
    serials: set[str]
    new: bool = False
    """The week before a meter's first poll: written at once, as the recorder holds nothing
    of it; the closing row then only checks the seam."""
    written: set[str] = field(default_factory=set)
    """The meters of a ``new`` gap whose week is written."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "serials": sorted(self.serials),
            "new": self.new,
            "written": sorted(self.written),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gap:
        """Read the JSON form."""
        return cls(
            datetime.fromisoformat(data["start"]),
            datetime.fromisoformat(data["end"]),
            set(data["serials"]),
            bool(data.get("new", False)),
            set(data.get("written", [])),
        )


def aware_time(text: object) -> datetime | None:
    """A stored ISO time with its zone, or None (missing, malformed or naive)."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def iso_time(at: datetime | None) -> str | None:
    """``at`` in its stored (and diagnostics) form."""
    return at.isoformat() if at else None


class GapLedger:
    """What the live polls missed: the last good poll, the meters known then, the open gaps."""

    def __init__(self) -> None:
        """Start empty: the first poll noted opens the week before as a gap."""
        self.last_poll: datetime | None = None
        self.known: set[str] = set()
        self.pending: list[Gap] = []

    def restore(self, stored: Mapping[str, Any]) -> None:
        """Take the state of the last run from the history store (unreadable: start over)."""
        try:
            self.last_poll = aware_time(stored.get("last_poll"))
            self.known = set(stored.get("known", []))
            self.pending = [Gap.from_dict(gap) for gap in stored.get("gaps", [])]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            LOGGER.warning("Ignoring the stored IAMMETER history state: %s", err)
            self.last_poll, self.known, self.pending = None, set(), []

    def to_store(self) -> dict[str, Any]:
        """The ledger's part of the history store."""
        return {
            "last_poll": iso_time(self.last_poll),
            "known": sorted(self.known),
            "gaps": [gap.to_dict() for gap in self.pending],
        }

    def note_poll(self, fetched_at: datetime, serials: Iterable[str], interval: timedelta) -> bool:
        """Open a gap when the poll at ``fetched_at`` came too long after the one before it.

        ``serials`` are the meters of that poll, ``interval`` the polling interval. True when the
        ledger changed (to be saved).
        """
        serials = set(serials)
        if self.last_poll is None:
            # First run: the week before, for every meter.
            self.pending.append(
                Gap(fetched_at - BACKFILL_WINDOW, fetched_at, set(serials), new=True)
            )
        elif fetched_at - self.last_poll > 2 * interval + GAP_MARGIN:
            self.pending.append(Gap(self.last_poll, fetched_at, set(serials)))
        if self.last_poll is not None and (new := serials - self.known):
            # A meter added to the account: its week before.
            self.pending.append(Gap(fetched_at - BACKFILL_WINDOW, fetched_at, new, new=True))
        if fetched_at == self.last_poll and serials == self.known:
            return False
        self.last_poll = max(fetched_at, self.last_poll or fetched_at)
        self.known = serials
        return True

    def diagnostics(self) -> dict[str, Any]:
        """The ledger for the diagnostics download (the serials are redacted there)."""
        return self.to_store()
