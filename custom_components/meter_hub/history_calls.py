"""The cloud calls of the history jobs: each through the call budget, a rate limit backed off.

The history shares the account's budget with the live polls and the actions, and always
yields: a call the budget refuses, or one the cloud answers with its rate limit, is put off
(``Deferred``) rather than waited for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from .api.budget import BudgetExceeded, CallKind
from .api.iammeter import RateLimited
from .cloud_budget import CloudBudget
from .const import LOGGER

RATE_LIMIT_BACK_OFF: Final = timedelta(hours=1)


class Deferred(Exception):
    """A cloud call cannot be made now; try again at ``until``."""

    def __init__(self, until: datetime) -> None:
        """Note when to try again."""
        super().__init__(until.isoformat())
        self.until = until


class HistoryCalls:
    """Makes a history job's cloud calls within the account's call budget."""

    def __init__(self, budget: CloudBudget) -> None:
        """Spend ``budget``, the one the entry's polls spend too."""
        self._budget = budget

    async def async_spend(self, kind: CallKind, key: str, now: datetime) -> None:
        """Count a call of ``kind`` for ``key``; ``Deferred`` when the budget refuses it."""
        try:
            await self._budget.async_spend(kind, key)
        except BudgetExceeded as err:
            LOGGER.debug("History call deferred by the call budget: %s", err)
            raise Deferred(max(err.retry_at, now)) from err

    async def async_call[T](
        self, kind: CallKind, key: str, now: datetime, call: Callable[[], Awaitable[T]]
    ) -> T:
        """Spend, then make ``call``; a rate limit backs ``kind`` off for an hour (``Deferred``).

        Other ``IamMeterError``s are the caller's to handle.
        """
        await self.async_spend(kind, key, now)
        try:
            return await call()
        except RateLimited as err:
            await self._budget.async_back_off(kind, key, now + RATE_LIMIT_BACK_OFF)
            raise Deferred(now + RATE_LIMIT_BACK_OFF) from err
