"""A fake HomeWizard v2 device for the push benchmark, in a process of its own.

``PushDeviceProcess`` starts ``python -m bench.push_device`` and drives it one line at a time;
the device runs on an event loop of its own thread there. Commands, each answered ``ok ...``:
``add PROFILE TOKEN TICK`` (JSON: host, ``/api`` body, CA file, certificate name), ``step SECONDS``
(the meter moves on, the device pushes), ``set WATTS`` (the power changes, pushed at once),
``stop`` (the device goes away: sockets cut, port closed), ``start WATTS`` (back on its port with
that power), ``counts`` (requests per path and messages sent, JSON), ``quit``. ``step``, ``set``
and ``start`` answer the moment the device sent or listened again, in ``time.monotonic()``, the
one monotonic clock of every process on the machine (Linux ``CLOCK_MONOTONIC``).

Besides, the device sends its measurement every TICK seconds as a real one does (``-``: never,
on a moved clock the benchmark decides when it sends). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import random
import sys
import time
from typing import Any

from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

from .harness import DeviceProcess, LoopThread

USER = "local/bench"
# A device that sends only when the benchmark tells it to.
SILENT_TICK = 10 * 24 * 3600.0


class MovingMeter:
    """The measurement of a P1 meter that moves like a real one: power walks, counters grow."""

    def __init__(self, measurement: dict[str, Any], seed: int = 0) -> None:
        """Move ``measurement`` in place."""
        self._body = measurement
        self._random = random.Random(seed)  # noqa: S311 - a reproducible walk, not a secret
        self._import_t2 = float(measurement["energy_import_t2_kwh"])
        self._export_t2 = float(measurement["energy_export_t2_kwh"])

    def set_power(self, watts: int) -> None:
        """Power ``watts`` in total, spread over the three phases."""
        body = self._body
        body["power_w"] = watts
        for phase in (1, 2, 3):
            body[f"power_l{phase}_w"] = round(watts / 3)
            body[f"current_l{phase}_a"] = round(watts / 3 / 230, 3)
        body["current_a"] = round(abs(watts) / 230, 3)

    def advance(self, seconds: float) -> None:
        """``seconds`` pass: the power walks, the tariff 2 counters book it, voltages jitter."""
        body, draw = self._body, self._random
        watts = max(-3000, min(6000, int(body["power_w"]) + draw.randint(-150, 150)))
        self.set_power(watts)
        kwh = watts * seconds / 3_600_000
        if kwh > 0:
            self._import_t2 += kwh
        else:
            self._export_t2 -= kwh
        body["energy_import_t2_kwh"] = round(self._import_t2, 3)
        body["energy_import_kwh"] = round(body["energy_import_t1_kwh"] + self._import_t2, 3)
        body["energy_export_t2_kwh"] = round(self._export_t2, 3)
        body["energy_export_kwh"] = round(body["energy_export_t1_kwh"] + self._export_t2, 3)
        for phase in (1, 2, 3):
            body[f"voltage_l{phase}_v"] = round(230 + draw.uniform(-1.5, 1.5), 1)


class _Device:
    """The child's side: one fake v2 device and its moving meter."""

    def __init__(self) -> None:
        self._loop = LoopThread("fake-v2-device")
        self._authority = SimulatorAuthority()
        self._fake: FakeHomeWizardV2 | None = None
        self._meter: MovingMeter | None = None
        self._port = 0

    @property
    def fake(self) -> FakeHomeWizardV2:
        if self._fake is None:
            raise RuntimeError("no device: add one first")
        return self._fake

    @property
    def meter(self) -> MovingMeter:
        if self._meter is None:
            raise RuntimeError("no device: add one first")
        return self._meter

    def add(self, profile: str, token: str, tick: float) -> dict[str, Any]:
        async def start() -> FakeHomeWizardV2:
            fake = FakeHomeWizardV2(self._authority, profile, push_interval=tick)
            fake.users[USER] = token
            self._port = await fake.start()
            return fake

        self._fake = self._loop.call(start)
        self._meter = MovingMeter(self._fake.measurement)
        return {
            "host": self.fake.host,
            "device": self.fake.device,
            "ca_file": str(self._authority.ca_file),
            "server_hostname": self.fake.server_hostname,
        }

    def push(self, change: Any) -> float:
        """Apply ``change`` to the meter in the device's loop and push; when it was pushed."""

        async def push() -> float:
            change(self.meter)
            self.fake.push()
            return time.monotonic()

        return self._loop.call(push)

    def stop(self) -> None:
        self._loop.call(self.fake.stop)

    def start(self, watts: int) -> float:
        async def start() -> float:
            self.meter.set_power(watts)
            await self.fake.start(self._port)
            return time.monotonic()

        return self._loop.call(start)

    def counts(self) -> dict[str, Any]:
        return {"requests": dict(self.fake.request_count), "pushed": self.fake.pushed}

    def close(self) -> None:
        if self._fake is not None:
            self._loop.call(self._fake.stop)
        self._loop.close()
        self._authority.cleanup()


def _answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    """Serve commands until ``quit`` or the end of the input."""
    device = _Device()
    try:
        for line in sys.stdin:
            command, *args = line.split()
            answer: object = ""
            if command == "add":
                profile, token, tick = args
                answer = device.add(profile, token, SILENT_TICK if tick == "-" else float(tick))
            elif command == "step":
                answer = device.push(lambda meter, s=float(args[0]): meter.advance(s))
            elif command == "set":
                answer = device.push(lambda meter, w=int(args[0]): meter.set_power(w))
            elif command == "stop":
                device.stop()
            elif command == "start":
                answer = device.start(int(args[0]))
            elif command == "counts":
                answer = device.counts()
            elif command == "quit":
                _answer("ok")
                break
            else:
                _answer("error: unknown command")
                continue
            _answer(f"ok {json.dumps(answer)}")
    finally:
        device.close()


@dataclass(frozen=True, slots=True)
class PushDeviceInfo:
    """The device in the child process: where it listens, its ``/api`` body, whom to trust."""

    host: str
    device: dict[str, Any]
    ca_file: str
    server_hostname: str


class PushDeviceProcess(DeviceProcess):
    """The fake v2 device of ``main`` in a child process (see ``DeviceProcess``)."""

    module = "bench.push_device"

    def add_v2(self, profile: str, token: str, *, tick: float | None) -> PushDeviceInfo:
        """Start the device with a user whose token is ``token``, sending every ``tick`` s."""
        answer = self._ask(f"add {profile} {token} {'-' if tick is None else tick}")
        return PushDeviceInfo(**json.loads(answer))

    def step(self, seconds: float) -> float:
        """The meter moves ``seconds`` on and the device pushes; when it pushed."""
        return float(self._ask(f"step {seconds}"))

    def set_power(self, watts: int) -> float:
        """The power changes to ``watts``, pushed at once; when it was pushed."""
        return float(self._ask(f"set {watts}"))

    def go_away(self) -> None:
        """The device reboots or drops off the network: sockets cut, port closed."""
        self._ask("stop")

    def come_back(self, watts: int) -> float:
        """Back on its port, with power ``watts``; when it listened again."""
        return float(self._ask(f"start {watts}"))

    def counts(self) -> dict[str, Any]:
        """Requests per path and messages sent so far."""
        counts: dict[str, Any] = json.loads(self._ask("counts"))
        return counts


if __name__ == "__main__":
    main()
