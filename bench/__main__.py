"""``python -m bench``: run the benchmarks and write the results file (see ``scripts/bench``)."""

from __future__ import annotations

import argparse
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
    try:
        from importlib.metadata import version  # noqa: PLC0415

        versions["python-homewizard-energy"] = version("python-homewizard-energy")
    except Exception:  # noqa: BLE001
        versions["python-homewizard-energy"] = "not installed"
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), **versions}


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


def main() -> int:
    """Run the benchmarks; 0 unless one of them crashed."""
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", choices=("local", "cloud"))
    parser.add_argument("--polls", type=int)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Shown for information; the integrations' and Home Assistant's own warnings stay visible.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)

    from bench import harness, local  # noqa: PLC0415

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
        results["local"] = {
            "cpu": step(
                "local: CPU time per poll",
                lambda: harness.run(
                    lambda clock: local.async_cpu(
                        clock, polls, 5 if smoke else 50, PROFILE if args.profile else None
                    ),
                    None,
                ),
            ),
            "memory": step(
                "local: memory",
                lambda: harness.run(
                    lambda clock: local.async_memory(
                        clock, 20 if smoke else 1000, 1 if smoke else 4
                    ),
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
        local.describe(results["local"], say)
    if args.only in (None, "cloud"):
        from bench import cloud  # noqa: PLC0415

        meters = (1, 10) if smoke else (1, 10, 100)
        days = 1 if smoke else 7
        results["cloud"] = {
            f"{count}_meters": step(
                f"cloud: {count} meter(s), {days} simulated day(s)",
                lambda count=count: harness.run(
                    lambda clock: cloud.async_week(clock, count, days), CLOUD_START
                ),
            )
            for count in meters
        }
        cloud.describe(results["cloud"], say)

    results["seconds"] = round(time.monotonic() - started, 1)
    results["crashed"] = crashed
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    say(f"Results written to {shown}")
    if crashed:
        say(f"scripts/bench: crashed: {', '.join(crashed)}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
