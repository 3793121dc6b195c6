"""The fault matrix of the HomeWizard v2 WebSocket push (issue 18): connection faults as rows.

Each ``PushFaultCase`` breaks the socket of a fake v2 device (``simulator/homewizard_v2.py``, real
TLS on 127.0.0.1) while Meter Hub pushes from it, for ``lasts`` seconds of real time (the socket
runs in real time), then takes the fault away. ``run_push_case`` asserts what the design says:

* no entity is unavailable at any moment: the fault is shorter than the stale limit (30 s), so
  the last reading stands while the link reconnects and polls stand in (a refused token is the
  exception: the entry asks for reauthentication and polls meet the same refusal);
* polling and push never both at once (no poll starts while the socket delivers), and where the
  device still answers over REST, polls do take over;
* the link pushes again once the fault is gone; a failure logged when it went bad is followed by
  exactly one line when it recovered (none for a fault that the link rides out quietly);
* no traceback, and no energy booked by the statistics (the device's counters stand still, so
  every kWh booked is phantom), whatever the pushed messages hold.

The bounds of the stream are shortened for the test (silence 1 s, authorisation 1 s, client
timeout 2 s) and polls come every second, so a case takes a few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import functools
import json
import ssl
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.meter_hub.api.homewizard.push import PushStream
from custom_components.meter_hub.api.homewizard.tls import create_ssl_context
from custom_components.meter_hub.api.homewizard.v2_client import MAX_BODY
from custom_components.meter_hub.local_coordinator import LocalCoordinator
from custom_components.meter_hub.push_link import PushLink
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

from .conftest import local_entry
from .fault_records import CounterWatch, LogWatch, describe

USER = "local/home-assistant"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
# Time allowed for the link to push again once a fault is gone.
RECOVER_WITHIN = 20.0


@dataclass
class PushRun:
    """One case in progress."""

    hass: HomeAssistant
    entry: MockConfigEntry
    fake: FakeHomeWizardV2
    logs: LogWatch
    counters: CounterWatch
    port: int

    @property
    def coordinator(self) -> LocalCoordinator:
        """The entry's coordinator."""
        coordinator = self.entry.runtime_data.coordinator
        assert isinstance(coordinator, LocalCoordinator)
        return coordinator

    @property
    def link(self) -> PushLink:
        """The entry's WebSocket link."""
        assert self.coordinator.push is not None
        return self.coordinator.push


type PushStep = Callable[[PushRun], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class PushFaultCase:
    """One row of the push matrix."""

    name: str
    covers: tuple[str, ...]
    inject: PushStep
    lasts: float = 3.0  # seconds of real time the fault lasts
    restore: PushStep | None = None  # besides putting the fake back as it was
    polls_take_over: bool = False  # the device answers over REST meanwhile: polls must come
    reauth: bool = False  # the token is refused: reauth, entities unavailable meanwhile
    # log lines going bad and recovering; None: at most one, and as many recovering
    lines: tuple[int, int] | None = None

    @property
    def id(self) -> str:
        """The case id (pytest id and record name)."""
        return f"push-{self.name}"


async def _reboot(run: PushRun) -> None:
    await run.fake.stop()


async def _back_on_port(run: PushRun) -> None:
    await run.fake.start(run.port)


def _flag(name: str) -> PushStep:
    async def inject(run: PushRun) -> None:
        setattr(run.fake, name, True)
        run.fake.drop_sockets()

    return inject


async def _revoke(run: PushRun) -> None:
    run.fake.revoke(USER)
    run.fake.drop_sockets()


async def _token_back(run: PushRun) -> None:
    run.fake.users[USER] = TOKEN


def _raw(*texts: str) -> PushStep:
    async def inject(run: PushRun) -> None:
        for text in texts:
            run.fake.send_raw(text)

    return inject


def _measurement(run: PushRun, **changes: object) -> str:
    return json.dumps({"type": "measurement", "data": {**run.fake.measurement, **changes}})


async def _flood(run: PushRun) -> None:
    """2000 messages at once (a device gone wild), every one of them the same reading."""
    run.fake.send_raw(_measurement(run), 2000)


async def _counter_spike(run: PushRun) -> None:
    counter = float(run.fake.measurement["energy_import_kwh"])
    run.fake.send_raw(_measurement(run, energy_import_kwh=counter + 1_000_000))


async def _counter_drop(run: PushRun) -> None:
    run.fake.send_raw(_measurement(run, energy_import_kwh=0.0))


PUSH_CASES: tuple[PushFaultCase, ...] = (
    PushFaultCase(
        name="device-reboot",
        covers=("ws-reboot",),
        inject=_reboot,
        restore=_back_on_port,
    ),
    PushFaultCase(
        name="wifi-drop",
        covers=("ws-wifi-drop",),
        inject=_flag("silent"),
        lasts=4.0,
    ),
    PushFaultCase(
        name="revoked-token",
        covers=("ws-revoked-token",),
        inject=_revoke,
        restore=_token_back,
        reauth=True,
    ),
    PushFaultCase(
        name="never-upgrades",
        covers=("ws-no-upgrade",),
        inject=_flag("hang_upgrade"),
        polls_take_over=True,
    ),
    PushFaultCase(
        name="never-authorises",
        covers=("ws-no-authorisation",),
        inject=_flag("hang_authorization"),
        polls_take_over=True,
    ),
    PushFaultCase(name="not-json", covers=("ws-malformed",), inject=_raw("{not json"), lasts=2.0),
    PushFaultCase(
        name="no-type", covers=("ws-malformed",), inject=_raw('[{"no": "type"}]'), lasts=2.0
    ),
    PushFaultCase(
        name="data-not-an-object",
        covers=("ws-malformed",),
        inject=_raw('{"type": "measurement", "data": 7}'),
        lasts=2.0,
    ),
    PushFaultCase(
        name="oversized-message",
        covers=("ws-oversized",),
        inject=_raw(json.dumps({"type": "measurement", "data": {"pad": "x" * (MAX_BODY + 1)}})),
        lasts=2.0,
    ),
    PushFaultCase(name="message-flood", covers=("ws-flood",), inject=_flood, lasts=2.0),
    # the counter guard holds the value back and says so, then the next message ends the hold
    PushFaultCase(
        name="counter-spike",
        covers=("ws-counter-spike",),
        inject=_counter_spike,
        lasts=2.0,
        lines=(2, 0),
    ),
    PushFaultCase(
        name="counter-drop",
        covers=("ws-counter-drop",),
        inject=_counter_drop,
        lasts=2.0,
        lines=(2, 0),
    ),
    PushFaultCase(
        name="push-stops",
        covers=("ws-push-stops",),
        inject=_flag("mute"),
        polls_take_over=True,
    ),
)

# Every connection fault issue 18 names.
PUSH_REQUIRED: tuple[str, ...] = (
    "ws-reboot",
    "ws-wifi-drop",
    "ws-revoked-token",
    "ws-no-upgrade",
    "ws-no-authorisation",
    "ws-malformed",
    "ws-oversized",
    "ws-flood",
    "ws-counter-spike",
    "ws-counter-drop",
    "ws-push-stops",
)


@contextlib.asynccontextmanager
async def push_run(hass: HomeAssistant, logs: LogWatch) -> AsyncIterator[PushRun]:
    """A pushing entry of a fake v2 P1 meter, with the stream's bounds shortened."""
    authority = await hass.async_add_executor_job(SimulatorAuthority)
    trust = await hass.async_add_executor_job(create_ssl_context, authority.ca_file)

    async def simulator_context() -> ssl.SSLContext:
        return trust

    fake = FakeHomeWizardV2(authority, "HWE-P1")
    fake.users[USER] = TOKEN
    port = await fake.start()
    short_stream = functools.partial(PushStream, handshake_timeout=1.0, silence_limit=1.0)
    try:
        with (
            patch(
                "custom_components.meter_hub.local_coordinator.shared_ssl_context",
                simulator_context,
            ),
            patch("custom_components.meter_hub.push_link.PushStream", short_stream),
        ):
            entry = local_entry(fake, v2_token=TOKEN, scan_interval=1)
            entry.add_to_hass(hass)
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            counters = CounterWatch(hass, logs)
            counters.seed()
            yield PushRun(hass, entry, fake, logs, counters, port)
            assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await fake.stop()
        await hass.async_add_executor_job(authority.cleanup)


async def _wait(run: PushRun, condition: Callable[[], bool], within: float) -> bool:
    """Let real time pass until ``condition`` holds; whether it did."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while not condition():
                await asyncio.sleep(0.02)
                await run.hass.async_block_till_done()
            return True
    return False


async def _let_pass(run: PushRun, seconds: float) -> None:
    await _wait(run, lambda: False, seconds)


def _put_back(fake: FakeHomeWizardV2) -> None:
    fake.hang_upgrade = fake.hang_authorization = fake.mute = fake.silent = False


@dataclass
class PushOutcome:
    """What a push case found."""

    problems: list[str]
    recovered: bool = False
    bad_lines: int = 0
    recovery_lines: int = 0
    polls: int = 0
    checks: int = 0


async def run_push_case(case: PushFaultCase, run: PushRun) -> PushOutcome:
    """Inject, watch the entities, the polls and the log; take the fault away; watch again."""
    outcome = PushOutcome(problems=[])
    problems = outcome.problems
    hass, link, coordinator = run.hass, run.link, run.coordinator
    if not await _wait(run, lambda: link.pushing, 10):
        problems.append("the link never pushed before the fault")
    registry = er.async_get(hass)
    entities = {
        e.entity_id for e in er.async_entries_for_config_entry(registry, run.entry.entry_id)
    }
    went_unavailable: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] in entities and new is not None:
            outcome.checks += 1
            if new.state == STATE_UNAVAILABLE:
                went_unavailable.append(event.data["entity_id"])

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    both_at_once: list[str] = []
    poll = coordinator._async_poll

    async def watched() -> Any:
        outcome.polls += 1
        if link.pushing:
            both_at_once.append(link.state)
        return await poll()

    with patch.object(coordinator, "_async_poll", watched):
        run.logs.mark()
        await case.inject(run)
        await _let_pass(run, case.lasts)
        polls_during = outcome.polls
        bad = run.logs.lines()
        outcome.bad_lines = len(bad)
        if case.reauth:
            if not list(run.entry.async_get_active_flows(hass, {SOURCE_REAUTH})):
                problems.append("a refused token started no reauthentication")
        elif went_unavailable:
            problems.append(
                f"unavailable during a fault shorter than the stale limit: "
                f"{sorted(set(went_unavailable))[:5]}"
            )
        if case.polls_take_over and polls_during == 0:
            problems.append("the device answers over REST, yet no poll came")
        if len(bad) > 1 if case.lines is None else len(bad) != case.lines[0]:
            problems.append(f"{len(bad)} log lines when it went bad: {describe(bad)}")

        run.logs.mark()
        _put_back(run.fake)
        if case.restore is not None:
            await case.restore(run)
        if case.reauth:
            # the user pairs again: the entry reloads and pushes anew
            assert await hass.config_entries.async_reload(run.entry.entry_id)
            await hass.async_block_till_done()
            link = run.link
        back = await _wait(
            run,
            lambda: (
                link.pushing
                and coordinator.last_update_success
                and all(
                    (state := hass.states.get(e)) is not None and state.state != STATE_UNAVAILABLE
                    for e in entities
                    if registry.async_get(e) is not None and not registry.async_get(e).disabled
                )
            ),
            RECOVER_WITHIN,
        )
        await _let_pass(run, 1.5)
    unsub()
    outcome.recovered = back
    if not back:
        problems.append(f"not back to pushing within {RECOVER_WITHIN:g} s ({link.last_error})")
    if both_at_once:
        problems.append(f"{len(both_at_once)} polls while the socket delivered")
    good = run.logs.lines()
    outcome.recovery_lines = len(good)
    if len(good) != (outcome.bad_lines if case.lines is None else case.lines[1]):
        problems.append(
            f"{len(bad)} log lines going bad, {len(good)} recovering: {describe(bad + good)}"
        )
    return outcome
