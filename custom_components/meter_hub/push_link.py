"""The WebSocket push of a HomeWizard v2 device, with polling as its fallback.

While the socket delivers, the coordinator does not poll (its interval is None); when the socket
drops, polling resumes at the entry's interval after one interval, and the link reconnects with
exponential backoff and jitter. Each pushed reading goes through ``async_set_updated_data``: the
same entities, the same counter guard as a poll.

Coalescing rule: at most one update of the entities per ``publish_interval`` (0: every message the
device sends); a message that comes sooner waits, and only the newest waiting one is kept, so a
burst or a slow Home Assistant never queues readings. Entities write their state only when it
changed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import timedelta
import random
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, callback
from homeassistant.helpers.event import async_call_later

from .api.homewizard.errors import HomeWizardError, Unauthorized
from .api.homewizard.models import HomeWizardDevice
from .api.homewizard.push import PushStream
from .api.homewizard.v2_client import HomeWizardV2Client
from .api.model import Reading
from .api.transport import loggable
from .const import LOGGER
from .coordinator import MeterData

if TYPE_CHECKING:
    from .local_coordinator import LocalCoordinator

# Reconnect after 1 s, 2 s, 4 s ... up to 5 minutes, each delay drawn from its upper half (jitter:
# devices that all dropped at once, after a Wi-Fi outage, do not come back in step).
BACKOFF_FIRST: Final = 1.0
BACKOFF_MAX: Final = 300.0
# Messages over which the message rate is measured.
RATE_WINDOW: Final = 60

STATE_CONNECTING: Final = "connecting"
STATE_PUSHING: Final = "pushing"
STATE_STOPPED: Final = "stopped"


def backoff_delay(attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before connection attempt ``attempt`` + 1 (``attempt`` failed in a row)."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
    return draw(ceiling / 2, ceiling)


class PushLink:
    """Keeps the WebSocket of one device open and publishes what it pushes."""

    def __init__(
        self,
        coordinator: LocalCoordinator,
        client: HomeWizardV2Client,
        *,
        publish_interval: float,
        stale_after: timedelta,
    ) -> None:
        """Push into ``coordinator``; ``publish_interval`` in seconds (0: as fast as sent)."""
        self._coordinator = coordinator
        self._client = client
        self._poll_interval = coordinator.update_interval
        self._publish_interval = publish_interval
        self._stale_after = stale_after.total_seconds()
        self.state = STATE_CONNECTING
        self.reconnects = 0
        self.last_error: str | None = None
        self._received: deque[float] = deque(maxlen=RATE_WINDOW)
        self._published_at = 0.0
        self._waiting: Reading | None = None
        self._unsub_publish: CALLBACK_TYPE | None = None
        self._unsub_poll: CALLBACK_TYPE | None = None
        # When the socket last stopped delivering (monotonic); None while it delivers.
        self._dropped_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @callback
    def async_start(self, device: HomeWizardDevice) -> None:
        """Run the link until the entry unloads or Home Assistant stops.

        A task of its own, not a background task of the entry: it never ends by itself, and
        Home Assistant's "wait for background tasks" would wait for it for ever.
        """
        self._task = self._coordinator.hass.loop.create_task(
            self.async_run(device), name=f"{self._coordinator.name} WebSocket"
        )
        entry = self._coordinator.config_entry
        entry.async_on_unload(self.async_stop)
        entry.async_on_unload(
            self._coordinator.hass.bus.async_listen_once(
                EVENT_HOMEASSISTANT_STOP, self._async_stopping
            )
        )

    @callback
    def _async_stopping(self, _event: Event) -> None:
        self.async_stop()

    @property
    def pushing(self) -> bool:
        """Whether the socket delivers (then the coordinator does not poll)."""
        return self.state == STATE_PUSHING

    def keeps_last_reading(self) -> bool:
        """Whether a failed poll may keep the last reading: the socket dropped a moment ago."""
        return (
            self._dropped_at is not None and time.monotonic() - self._dropped_at < self._stale_after
        )

    async def async_run(self, device: HomeWizardDevice) -> None:
        """Connect, push, reconnect; ends only on a refused token (reauth) or on unload."""
        attempt = 0
        try:
            while True:
                self.state = STATE_CONNECTING
                try:
                    await PushStream(self._client, device).run(
                        lambda reading: self._on_reading(device, reading)
                    )
                except Unauthorized as err:
                    # A user removed in the app: pair again. Polls stand in meanwhile (and meet
                    # the same refusal).
                    self._dropped(err)
                    self.state = STATE_STOPPED
                    self._coordinator.config_entry.async_start_reauth(self._coordinator.hass)
                    return
                except HomeWizardError as err:
                    if self._dropped(err):
                        attempt = 0
                delay = backoff_delay(attempt)
                attempt += 1
                LOGGER.debug("WebSocket of %s: reconnect in %.1f s", device.serial, delay)
                await asyncio.sleep(delay)
        finally:
            self._cancel_timers()

    @callback
    def async_stop(self) -> None:
        """Close the socket and cancel the timers (on unload, when Home Assistant stops)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for unsub in (self._unsub_publish, self._unsub_poll):
            if unsub is not None:
                unsub()
        self._unsub_publish = self._unsub_poll = None

    def diagnostics(self) -> dict[str, Any]:
        """The connection's state, message rate, reconnect count and last error."""
        received = self._received
        span = received[-1] - received[0] if len(received) > 1 else 0.0
        return {
            "state": self.state,
            "message_rate_per_s": round((len(received) - 1) / span, 2) if span else None,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "publish_interval_ms": round(self._publish_interval * 1000),
        }

    def _dropped(self, err: HomeWizardError) -> bool:
        """Fall back to polling after ``err``; whether the socket had been delivering."""
        was_pushing = self.pushing
        self.last_error = loggable(str(err) or type(err).__name__)
        LOGGER.debug("WebSocket of %s: %s", self._client.serial, self.last_error)
        self.state = STATE_CONNECTING
        if was_pushing:
            self.reconnects += 1
            self._dropped_at = time.monotonic()
        if self._unsub_publish is not None:
            self._unsub_publish()
            self._unsub_publish = None
        self._waiting = None
        if self._coordinator.update_interval is None and self._unsub_poll is None:
            # Poll again one interval from now (a quick reconnect makes that poll unneeded).
            self._coordinator.update_interval = self._poll_interval
            delay = self._poll_interval.total_seconds() if self._poll_interval else 0
            self._unsub_poll = async_call_later(self._coordinator.hass, delay, self._poll)
        return was_pushing

    @callback
    def _poll(self, _now: Any) -> None:
        self._unsub_poll = None
        if not self.pushing:
            self._coordinator.config_entry.async_create_background_task(
                self._coordinator.hass,
                self._coordinator.async_request_refresh(),
                f"{self._coordinator.name} poll",
            )

    @callback
    def _on_reading(self, device: HomeWizardDevice, reading: Reading) -> None:
        now = time.monotonic()
        self._received.append(now)
        if not self.pushing:
            self.state = STATE_PUSHING
            self._dropped_at = None
            # No polls while the socket delivers.
            self._coordinator.update_interval = None
            if self._unsub_poll is not None:
                self._unsub_poll()
                self._unsub_poll = None
        self._waiting = reading
        if self._unsub_publish is not None:
            return
        due = self._published_at + self._publish_interval - now
        if due <= 0:
            self._publish(device)
        else:
            self._unsub_publish = async_call_later(
                self._coordinator.hass, due, callback(lambda _now: self._publish(device))
            )

    @callback
    def _publish(self, device: HomeWizardDevice) -> None:
        self._unsub_publish = None
        reading, self._waiting = self._waiting, None
        if reading is None:
            return
        self._published_at = time.monotonic()
        self._coordinator.async_set_updated_data(
            {device.serial: MeterData(device.meter_info, reading)}
        )
