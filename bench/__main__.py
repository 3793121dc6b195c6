"""``python -m bench``: run the benchmarks and write the results file (see ``scripts/bench``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
import json
import logging
import os
from pathlib import Path
import platform
import shlex
import subprocess
import sys
import time
import traceback
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SMOKE_RESULTS = ROOT / "artifacts" / "bench-smoke.json"
PROFILE = ROOT / "artifacts" / "bench-profile.txt"
# The simulated week starts at a fixed moment, so runs are comparable.
CLOUD_START = datetime(2025, 1, 13, 0, 0, tzinfo=UTC)


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from homeassistant.const import __version__ as ha_version  # noqa: PLC0415

    versions = {"python": platform.python_version(), "homeassistant": ha_version}
    from importlib.metadata import version  # noqa: PLC0415

    for library in ("python-homewizard-energy", "iammeter"):
        try:
            versions[library] = version(library)
        except Exception:  # noqa: BLE001
            versions[library] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        # Other work on the machine while the benchmark ran (1-minute load average).
        "load_average_at_start": round(os.getloadavg()[0], 2),
        **versions,
    }


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(  # noqa: S603 - git, fixed arguments
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - git, fixed arguments
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "custom_components"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{rev}{' + uncommitted changes' if dirty else ''}"


def say(text: str, *, err: bool = False) -> None:
    """One line of the report, at once (the parts take a while)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _run_cloud(meters: tuple[int, ...], days: int) -> dict[str, Any]:
    """Every scenario and account size, each in a process of its own, two at a time.

    The processes run ``python -m bench.cloud``; the results are keyed ``<scenario>_<n>_meters``.
    """
    from bench.cloud import SCENARIOS  # noqa: PLC0415

    runs = [(scenario, count) for scenario in SCENARIOS for count in meters]
    # The largest first: they take longest.
    pending = sorted(runs, key=lambda run: run[1])
    running: dict[tuple[str, int], subprocess.Popen[str]] = {}
    results: dict[str, Any] = {}
    workers = max(1, min(2, os.cpu_count() or 1))
    while pending or running:
        while pending and len(running) < workers:
            scenario, count = run = pending.pop()
            running[run] = subprocess.Popen(  # noqa: S603 - our own module, same interpreter
                [
                    sys.executable,
                    "-m",
                    "bench.cloud",
                    str(count),
                    str(days),
                    CLOUD_START.isoformat(),
                    scenario,
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
        done = [run for run, proc in running.items() if proc.poll() is not None]
        if not done:
            time.sleep(0.5)
            continue
        for run in done:
            proc = running.pop(run)
            out, _ = proc.communicate()
            try:
                results[_cloud_key(*run)] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                results[_cloud_key(*run)] = {"error": f"exit {proc.returncode}, no result"}
    return {_cloud_key(*run): results[_cloud_key(*run)] for run in runs}


def _cloud_key(scenario: str, meters: int) -> str:
    return f"{scenario}_{meters}_meters"


def _run_local(
    step: Callable[[str, Callable[[], Any]], Any], *, polls: int, smoke: bool, profile: bool
) -> dict[str, Any]:
    """The HomeWizard measurements, each on a fresh Home Assistant and loop."""
    from bench import harness, local  # noqa: PLC0415

    warmup = 5 if smoke else 50
    results = {
        "cpu": step(
            "local: CPU time per poll",
            lambda: harness.run(
                lambda clock: local.async_cpu(clock, polls, warmup, PROFILE if profile else None),
                None,
            ),
        ),
        "cpu_shared_device": step(
            "local: CPU time per poll, both integrations on one device",
            lambda: harness.run(
                lambda clock: local.async_cpu(clock, polls, warmup, None, shared_device=True),
                None,
            ),
        ),
        "memory": step(
            "local: memory",
            lambda: harness.run(
                lambda clock: local.async_memory(clock, 20 if smoke else 1000, 1 if smoke else 4),
                None,
            ),
        ),
        "setup": step(
            "local: setup time",
            lambda: harness.run(
                lambda clock: local.async_setup_time(clock, 3 if smoke else 20), None
            ),
        ),
    }
    local.describe(results, say)
    return results


def _run_iammeter(
    step: Callable[[str, Callable[[], Any]], Any], *, polls: int, smoke: bool
) -> dict[str, Any]:
    """The IAMMETER local measurements (Meter Hub and core ``iammeter``), each on a fresh loop."""
    from bench import harness, iammeter_local  # noqa: PLC0415

    results = {
        "cpu": step(
            "iammeter: CPU time per poll",
            lambda: harness.run(
                lambda clock: iammeter_local.async_cpu(clock, polls, 5 if smoke else 50), None
            ),
        ),
        "memory": step(
            "iammeter: memory per entry",
            lambda: harness.run(
                lambda clock: iammeter_local.async_memory(clock, 2 if smoke else 20), None
            ),
        ),
        "latency": step(
            "iammeter: time from a change on the meter to the new state",
            lambda: harness.run(
                lambda clock: iammeter_local.async_latency(clock, 3 if smoke else 20), None
            ),
        ),
    }
    iammeter_local.describe(results, say)
    return results


def _run_push(step: Callable[[str, Callable[[], Any]], Any], *, smoke: bool) -> dict[str, Any]:
    """HomeWizard v2 push against core's polling, each measurement on a fresh Home Assistant."""
    from bench import harness, push  # noqa: PLC0415

    hour = 60 if smoke else 3600
    results = {
        "latency": step(
            "push: latency from the device to the state (real time)",
            lambda: harness.run(
                lambda clock: push.async_latency(clock, 10 if smoke else 150, 0.2 if smoke else 1),
                None,
            ),
        ),
        "cpu": step(
            f"push: CPU per pushed update and per core poll, {hour} simulated seconds",
            lambda: harness.run(
                lambda clock: push.async_cpu(clock, hour, 5 if smoke else 60), None
            ),
        ),
        **{
            f"memory_{name}": step(
                f"push: memory of {name}, {hour} simulated seconds",
                lambda name=name: harness.run(
                    lambda clock: push.async_memory(clock, name, hour), None
                ),
            )
            for name in (push.MH, push.CORE)
        },
        "reconnect": step(
            "push: reconnect after the device was away (real time)",
            lambda: harness.run(
                lambda clock: push.async_reconnect(clock, 1 if smoke else 5, 3.0), None
            ),
        ),
    }
    push.describe(results, say)
    return results


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", choices=("local", "cloud", "iammeter", "push"))
    parser.add_argument("--polls", type=int)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--table", action="store_true")
    return parser.parse_args()


def _merged(previous: dict[str, Any], run: dict[str, Any], part: str) -> dict[str, Any]:
    """The results file after ``--only PART``: the other parts kept, this part's run noted in ``runs``."""
    merged = {**previous, part: run[part]}
    meta = {
        key: run[key] for key in ("command", "date", "revision", "machine", "seconds", "crashed")
    }
    merged["runs"] = {**previous.get("runs", {}), part: meta}
    return merged


def _write(results: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    say(f"Results written to {shown}")


def main() -> int:
    """Run the benchmarks; 0 unless one of them crashed."""
    args = _arguments()
    if args.table:
        from bench.report import table  # noqa: PLC0415

        source = args.output or RESULTS
        say(table(json.loads(source.read_text(encoding="utf-8"))))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Shown for information; the integrations' and Home Assistant's own warnings stay visible.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)

    smoke = args.smoke
    polls = args.polls or (20 if smoke else 2000)
    output = args.output or (SMOKE_RESULTS if smoke else RESULTS)
    command = "scripts/bench" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    results: dict[str, Any] = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": _git_revision(),
        "machine": _machine(),
        "smoke": smoke,
    }
    crashed: list[str] = []
    started = time.monotonic()

    def step(name: str, func: Any) -> Any:
        say(f"== {name}")
        t0 = time.monotonic()
        try:
            value = func()
        except Exception:  # noqa: BLE001 - report every crash, go on with the next part
            traceback.print_exc()
            crashed.append(name)
            return {"error": traceback.format_exc(limit=5)}
        say(f"   ({time.monotonic() - t0:.1f} s)")
        return value

    if args.only in (None, "local"):
        results["local"] = _run_local(step, polls=polls, smoke=smoke, profile=args.profile)
    if args.only in (None, "push"):
        results["push"] = _run_push(step, smoke=smoke)
    if args.only in (None, "cloud"):
        from bench import cloud  # noqa: PLC0415

        meters = (1, 10) if smoke else (1, 10, 100)
        days = 1 if smoke else 7
        say(
            f"== cloud: {', '.join(map(str, meters))} meters, {days} simulated day(s) each,"
            " without and with a restart every hour"
        )
        t0 = time.monotonic()
        results["cloud"] = _run_cloud(meters, days)
        crashed.extend(
            f"cloud: {name}" for name, value in results["cloud"].items() if "error" in value
        )
        say(f"   ({time.monotonic() - t0:.1f} s)")
        cloud.describe(results["cloud"], say)

    if args.only in (None, "iammeter"):
        results["iammeter"] = _run_iammeter(step, polls=polls, smoke=smoke)

    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    results["crashed"] = crashed
    if args.only and output.exists():
        results = _merged(json.loads(output.read_text(encoding="utf-8")), results, args.only)
    _write(results, output)
    if crashed:
        say(f"scripts/bench: crashed: {', '.join(crashed)}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
