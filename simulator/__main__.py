"""Every fake at once, with the real clock: ``python -m simulator`` (127.0.0.1 only).

Serves, one port each from ``--port-base`` (default 8780):

==========  ===========  ============================================================
port        what         details
==========  ===========  ============================================================
base + 0    cloud        IAMMETER cloud, one account (``demo`` / ``demo-password``) with
                         a single-phase meter, a single-phase solar meter, a three-phase
                         meter and a three-phase meter with net metering; it enforces the
                         vendor's rate limits and answers "nothing" past them
base + 1    p1           HomeWizard P1 meter (HWE-P1): three phases, a gas and a water meter
base + 2    socket       HomeWizard energy socket (HWE-SKT)
base + 3    water        HomeWizard water meter (HWE-WTR)
base + 9    solar        the cloud account's solar meter on the local IAMMETER API too:
                         the same serial, its values now (the cloud's are up to a minute
                         older), power moving every few seconds
base + 10   p1v2         HomeWizard P1 meter on API v2 (HTTPS), a Plug-In Battery behind it;
                         its API v1 on base + 11
base + 12   kwhv2        HomeWizard kWh meter (HWE-KWH3) on API v2; its API v1 on base + 13
base + 14   battery      HomeWizard Plug-In Battery (HWE-BAT), API v2 only
base + 20   wem3080      IAMMETER WEM3080 on the local network (single-phase, 7 values)
base + 21   wem3080t     IAMMETER WEM3080T, three phases, Admin Security on (``admin`` /
                         ``demo-admin``: its monitor paths answer 401 without them)
base + 22   wem3080t_nem IAMMETER WEM3080T with net metering (the fourth row)
base + 23   wem3162      IAMMETER WEM3162, older firmware (no serial in its answer)
base + 24   (UDP)        SSDP responder for the IAMMETER meters (unicast M-SEARCH)
==========  ===========  ============================================================

The IAMMETER meters answer "not ready" (HTTP 400, null values) for 5 s after the start, as
after a boot.

The devices' values move with the clock (power varies, counters only increase, gas steps every
5 minutes). Each device has a switch for its local API: ``curl -X POST -d false
http://127.0.0.1:8781/_sim/api_enabled`` makes it answer 403 "API not enabled" (error 202), ``-d
true`` switches it back on, a GET shows it; ``--api-disabled p1`` starts with it off.
``--port-base 0`` picks free ports; ``--ready-file`` writes what runs where as JSON once every
fake listens. Ctrl-C (or SIGTERM) stops it.

The API v2 devices (``simulator.live_v2``) have certificates of a CA the simulator makes at start
(its file: ``homewizard_v2.ca_file`` in the ready file), push ``measurement`` on their WebSocket
``--push-rate`` times a second (1 by default) and give a token only after their button was
pressed: ``curl -k -X POST https://127.0.0.1:8790/_sim/press``.

These are the same fakes the tests use (``simulator.homewizard``, ``simulator.iammeter``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime
import json
import logging
import os
from pathlib import Path
import signal
import sys
from typing import Any, Final

from .homewizard import CONTROL_PATH, FakeHomeWizard
from .iammeter import DEMO_LOGIN, FakeIamMeterCloud, demo_account
from .iammeter_local import CloudMeterOnLan, DemoMeters
from .live_v2 import LiveV2
from .tls import SimulatorAuthority

DEFAULT_PORT_BASE: Final = 8780
# name, HomeWizard profile, offset from the port base, description
DEVICES: Final = (
    ("p1", "HWE-P1", 1, "HomeWizard P1 meter, 3 phases, gas and water meter behind it"),
    ("socket", "HWE-SKT", 2, "HomeWizard energy socket"),
    ("water", "HWE-WTR", 3, "HomeWizard water meter"),
)
CLOUD_OFFSET: Final = 0
# The demo account's solar meter also answers on the local IAMMETER API here.
SOLAR_LOCAL_OFFSET: Final = 9


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Fake IAMMETER cloud and HomeWizard devices on 127.0.0.1, values moving "
        "with the clock. Ctrl-C stops them.",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("METER_HUB_SIM_PORT_BASE", DEFAULT_PORT_BASE)),
        help="the cloud listens here, the devices on the next ports (default %(default)s, "
        "or $METER_HUB_SIM_PORT_BASE); 0: free ports",
    )
    parser.add_argument(
        "--api-disabled",
        action="append",
        default=[],
        choices=[name for name, *_ in DEVICES] + ["all"],
        metavar="DEVICE",
        help="start this device (p1, socket, water or all) with its local API off (403)",
    )
    parser.add_argument("--seed", type=int, default=0, help="randomness of the devices' values")
    parser.add_argument(
        "--push-rate",
        type=float,
        default=1.0,
        help="measurements per second the API v2 devices push on their WebSocket (default "
        "%(default)s, as a DSMR 5 meter)",
    )
    parser.add_argument("--ready-file", type=Path, help="write what runs where here, as JSON")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = parser.parse_args(argv)
    if not 0 < args.push_rate <= 100:
        parser.error("--push-rate must be above 0 and at most 100")
    return args


def _port(base: int, offset: int) -> int:
    return base + offset if base else 0


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    start = datetime.now(UTC)
    cloud = FakeIamMeterCloud(accounts=[demo_account()])
    devices = {
        name: FakeHomeWizard(profile, seed=args.seed + index, start=start, auto_advance=True)
        for index, (name, profile, _, _) in enumerate(DEVICES)
    }
    solar_sn = next(place.solar_sn for place in cloud.account(DEMO_LOGIN[0]).places)
    solar = CloudMeterOnLan(cloud.account(DEMO_LOGIN[0]).meter(solar_sn or ""), cloud.clock)
    authority = SimulatorAuthority()
    live = LiveV2(authority, start=start, seed=args.seed, interval=1 / args.push_rate)
    mover: asyncio.Task[None] | None = None
    local_meters = DemoMeters(args.seed)
    try:
        await cloud.start(_port(args.port_base, CLOUD_OFFSET))
        await solar.start(_port(args.port_base, SOLAR_LOCAL_OFFSET))
        await local_meters.start(args.port_base)
        for name, profile, offset, _ in DEVICES:
            fake = devices[name]
            fake.api_enabled = not ({name, "all"} & set(args.api_disabled))
            try:
                await fake.start(_port(args.port_base, offset), control=True)
            except OSError as err:
                raise SystemExit(f"simulator: cannot listen for {profile}: {err}") from err
        try:
            await live.start(args.port_base)
        except OSError as err:
            raise SystemExit(f"simulator: cannot listen for the API v2 devices: {err}") from err
        mover = asyncio.create_task(live.run())
        status = _status(cloud, devices) | {
            "homewizard_v2": live.status(),
            "iammeter_local": local_meters.status(),
            "iammeter_ssdp": f"127.0.0.1:{local_meters.ssdp.port}",
        }
        for meter in status["cloud"]["meters"]:
            if meter["sn"] == solar.serial:
                meter["local_host"] = solar.host
        if args.ready_file:
            _write_ready(args.ready_file, status)
        if not args.quiet:
            _print_status(status)
        await stop.wait()
    finally:
        if mover is not None:
            mover.cancel()
        await live.stop()
        authority.cleanup()
        await local_meters.stop()
        for fake in devices.values():
            await fake.stop()
        await solar.stop()
        await cloud.stop()
        if args.ready_file:
            with contextlib.suppress(OSError):
                args.ready_file.unlink()


def _write_ready(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` at once (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _status(cloud: FakeIamMeterCloud, devices: dict[str, FakeHomeWizard]) -> dict[str, Any]:
    username, password = DEMO_LOGIN
    account = cloud.account(username)
    return {
        "cloud": {
            "url": cloud.url,
            "username": username,
            "password": password,
            "meters": [
                {
                    "sn": meter.sn,
                    "phases": len(meter.phases),
                    "net_metering": meter.net is not None,
                    "exports": all(phase.base_w < 0 for phase in meter.phases if phase),
                }
                for meter in account.meters
            ],
        },
        "devices": {
            name: {
                "host": devices[name].host,
                "profile": profile,
                "description": description,
                "api_enabled": devices[name].api_enabled,
                "switch": f"http://{devices[name].host}{CONTROL_PATH}",
            }
            for name, profile, _, description in DEVICES
        },
    }


def _print_status(status: dict[str, Any]) -> None:
    cloud = status["cloud"]
    lines = ["Meter Hub simulator (127.0.0.1 only; Ctrl-C stops it)"]
    lines.append(f"  IAMMETER cloud   {cloud['url']}  (server)")
    lines.append(f"                   user {cloud['username']!r}, password {cloud['password']!r}")
    for meter in cloud["meters"]:
        kind = "single-phase" if meter["phases"] == 1 else "three-phase"
        net = ", net metering" if meter["net_metering"] else ""
        solar = " (solar: exports)" if meter["exports"] else ""
        lines.append(f"                   meter {meter['sn']}: {kind}{net}{solar}")
        if "local_host" in meter:
            lines.append(f"                   ... and on the local API at {meter['local_host']}")
    for name, device in status["devices"].items():
        api = "" if device["api_enabled"] else "  [local API off: 403]"
        lines.append(f"  {name:<6} {device['profile']:<9} {device['host']}  (host){api}")
        lines.append(f"                   {device['description']}")
    for name, meter in status["iammeter_local"].items():
        auth = "  [Admin Security: admin / demo-admin]" if meter["admin_security"] else ""
        lines.append(f"  {name:<12} IAMMETER {meter['model']:<8} {meter['host']}  (host){auth}")
    lines.append(f"  SSDP (IAMMETER)  {status['iammeter_ssdp']}  (UDP, unicast M-SEARCH)")
    some = next(iter(status["devices"].values()))
    lines.append(f"  Local API switch: curl -X POST -d false {some['switch']}  (true: on again)")
    v2 = status["homewizard_v2"]
    for name, device in v2["devices"].items():
        v1 = f"  (API v1: {device['v1_host']})" if device["v1_host"] else ""
        lines.append(f"  {name:<7} {device['profile']:<8} {device['host']}  (host, HTTPS){v1}")
        lines.append(f"                   {device['description']}")
    lines.append(
        f"  API v2: certificates of {v2['ca_file']}; pushing every {v2['push_interval']:g} s"
    )
    press = v2["devices"]["p1v2"]["press"]
    lines.append(f"  Press a v2 device's button (pairing): curl -k -X POST {press}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Serve every fake until Ctrl-C or SIGTERM."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        asyncio.run(_serve(args))
    except OSError as err:
        sys.exit(f"simulator: {err}")


if __name__ == "__main__":
    main()
