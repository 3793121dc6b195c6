"""The IAMMETER call budget, kept in Home Assistant storage so that restarts keep every limit.

One ledger serves every cloud entry and the config flow: the login limit is per IP. A call is
written to disk before it is made, so even a Home Assistant that is killed right after a call
remembers it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.singleton import singleton
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .api.budget import STORAGE_VERSION, CallBudget, CallKind
from .const import DOMAIN, LOGGER

BUDGET_KEY: HassKey[CloudBudget] = HassKey(f"{DOMAIN}_budget")


class CloudBudget:
    """The shared ledger and its storage."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create an empty ledger; ``async_load`` fills it from storage."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.call_budget")
        self.ledger = CallBudget(dt_util.utcnow)

    async def async_load(self) -> None:
        """Read the ledger saved by an earlier run."""
        if (saved := await self._store.async_load()) is None:
            return
        try:
            self.ledger = CallBudget.from_dict(saved, dt_util.utcnow)
        except ValueError as err:
            LOGGER.warning("Ignoring the stored IAMMETER call budget: %s", err)

    async def async_spend(self, kind: CallKind, key: str) -> None:
        """Record a call before it is made; raises ``BudgetExceeded`` if it would break a limit."""
        self.ledger.acquire(kind, key)
        await self._store.async_save(self.ledger.to_dict())

    async def async_back_off(self, kind: CallKind, key: str, until: datetime | None = None) -> None:
        """Refuse ``kind`` until ``until`` (or its longest window) after a rate-limited answer."""
        self.ledger.back_off(kind, key, until)
        await self._store.async_save(self.ledger.to_dict())


@singleton(BUDGET_KEY, async_=True)
async def async_get_budget(hass: HomeAssistant) -> CloudBudget:
    """The ledger of this Home Assistant, loaded once (concurrent callers wait for the load)."""
    budget = CloudBudget(hass)
    await budget.async_load()
    return budget
