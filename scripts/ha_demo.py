"""Set up a running Home Assistant for the demo and the browser test, through its public APIs.

Used by ``scripts/develop --demo`` and ``scripts/e2e``; runs in the develop venv (aiohttp):

  python scripts/ha_demo.py demo --url URL --simulator FILE --username U --password P
      onboard (or log in), add one IAMMETER cloud entry and the HomeWizard P1 through the config
      flow API, then put the integration's sensors into the energy dashboard preferences; the
      simulator's P1 meter and Plug-In Battery on API v2 are paired as a user does it (the
      progress step waits, the script presses the simulated button), the battery goes into the
      energy dashboard
  python scripts/ha_demo.py onboard --url URL --username U --password P
      onboarding only (create the user, finish the other steps)
  python scripts/ha_demo.py energy --url URL --username U --password P [--simulator FILE]
      energy preferences from the Meter Hub entities that exist now

``FILE`` is the simulator's ``--ready-file`` (what runs where). Every step waits for a condition
with a deadline (``--timeout``), and a run on a Home Assistant that has it all already changes
nothing and succeeds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import json
from pathlib import Path
import ssl
import sys
import time
from typing import Any

import aiohttp

DOMAIN = "meter_hub"


class DemoError(Exception):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"ha_demo: {message}", file=sys.stderr, flush=True)


async def until[T](
    what: str, probe: Callable[[], Awaitable[T | None]], seconds: float, every: float = 0.5
) -> T:
    """Call ``probe`` until it returns something (not None) or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while True:
        try:
            result = await probe()
        except (aiohttp.ClientError, OSError, TimeoutError, DemoError) as err:
            result, last = None, err
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {seconds:.0f} s waiting for {what} (last: {last})")
        await asyncio.sleep(every)


class HomeAssistant:
    """A Home Assistant reached over HTTP and its websocket API as one user."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.client_id = f"{self.url}/"
        self.timeout = timeout
        self.token = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_id = 0

    # --- HTTP ------------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, json_body: Any = None, data: Any = None, auth: bool = True
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        async with self.session.request(
            method, self.url + path, json=json_body, data=data, headers=headers
        ) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return response.status, body

    async def wait_until_up(self) -> None:
        async def probe() -> bool | None:
            status, _ = await self.request("GET", "/api/onboarding", auth=False)
            return True if status == 200 else None

        await until(f"Home Assistant at {self.url}", probe, self.timeout)

    async def onboard(self, name: str, username: str, password: str) -> None:
        """Create the first user and finish onboarding, or log in if that was done before."""
        _, steps = await self.request("GET", "/api/onboarding", auth=False)
        done = {step["step"] for step in steps if step.get("done")}
        if "user" in done:
            await self.login(username, password)
        else:
            status, body = await self.request(
                "POST",
                "/api/onboarding/users",
                json_body={
                    "client_id": self.client_id,
                    "name": name,
                    "username": username,
                    "password": password,
                    "language": "en",
                },
                auth=False,
            )
            if status != 200:
                raise DemoError(f"creating the user failed: {status} {body}")
            await self._token(body["auth_code"])
            log(f"created the user {username!r}")
        if "core_config" not in done:
            await self._expect("POST", "/api/onboarding/core_config", {})
        if "analytics" not in done:
            await self._expect("POST", "/api/onboarding/analytics", {})
        if "integration" not in done:
            await self._expect(
                "POST",
                "/api/onboarding/integration",
                {"client_id": self.client_id, "redirect_uri": f"{self.client_id}?auth_callback=1"},
            )
            await self._remove_offline_onboarding_entries()
        # A location and currency, so that Home Assistant does not ask for them in a repair.
        await self.ws(
            "config/core/update", country="NL", currency="EUR", time_zone="Europe/Amsterdam"
        )

    async def _remove_offline_onboarding_entries(self) -> None:
        """Remove Radio Browser, which onboarding adds and which fails without the internet."""

        async def probe() -> list[dict[str, Any]] | None:
            found = await self.ws("config_entries/get", domain="radio_browser")
            return found or None

        try:  # onboarding starts its flows in the background: wait for the entry to appear
            entries = await until("the Radio Browser entry", probe, 15)
        except DemoError:
            return
        for entry in entries:
            await self._expect(
                "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}", None
            )

    async def login(self, username: str, password: str) -> None:
        """Log in with the login flow the frontend uses."""
        status, flow = await self.request(
            "POST",
            "/auth/login_flow",
            json_body={
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.client_id}?auth_callback=1",
            },
            auth=False,
        )
        if status != 200:
            raise DemoError(f"starting the login failed: {status} {flow}")
        status, result = await self.request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            json_body={"client_id": self.client_id, "username": username, "password": password},
            auth=False,
        )
        if status != 200 or result.get("type") != "create_entry":
            raise DemoError(f"logging in as {username!r} failed: {status} {result}")
        await self._token(result["result"])

    async def _token(self, code: str) -> None:
        status, body = await self.request(
            "POST",
            "/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            auth=False,
        )
        if status != 200:
            raise DemoError(f"getting a token failed: {status} {body}")
        self.token = body["access_token"]

    async def _expect(self, method: str, path: str, body: Any) -> Any:
        status, answer = await self.request(method, path, json_body=body)
        if status != 200:
            raise DemoError(f"{method} {path}: {status} {answer}")
        return answer

    # --- websocket -------------------------------------------------------------------------

    async def ws(self, kind: str, **fields: Any) -> Any:
        """One websocket command; returns its result or raises DemoError."""
        if self._ws is None:
            self._ws = await self.session.ws_connect(self.url + "/api/websocket")
            await self._ws.receive_json()  # auth_required
            await self._ws.send_json({"type": "auth", "access_token": self.token})
            answer = await self._ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise DemoError(f"websocket authentication failed: {answer}")
        self._ws_id += 1
        await self._ws.send_json({"id": self._ws_id, "type": kind, **fields})
        while True:
            answer = await asyncio.wait_for(self._ws.receive_json(), self.timeout)
            if answer.get("id") == self._ws_id and answer.get("type") == "result":
                break
        if not answer.get("success"):
            raise DemoError(f"{kind} failed: {answer.get('error')}")
        return answer.get("result")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    # --- config entries --------------------------------------------------------------------

    async def entries(self) -> list[dict[str, Any]]:
        return await self.ws("config_entries/get", domain=DOMAIN)  # type: ignore[no-any-return]

    async def add_entry(self, step: str, user_input: dict[str, Any]) -> dict[str, Any]:
        """Run the config flow: the menu, then ``step`` with ``user_input``."""
        flow = await self._expect(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": DOMAIN, "show_advanced_options": True},
        )
        if flow.get("type") != "menu" or step not in flow.get("menu_options", []):
            raise DemoError(f"the config flow did not offer {step!r}: {flow}")
        path = f"/api/config/config_entries/flow/{flow['flow_id']}"
        form = await self._expect("POST", path, {"next_step_id": step})
        if form.get("type") != "form":
            raise DemoError(f"step {step!r} did not show a form: {form}")
        result = await self._expect("POST", path, user_input)
        if result.get("type") == "form" and result.get("step_id") == "insecure_server":
            # The simulator's cloud is plain http on 127.0.0.1: confirmed, as a user would.
            result = await self._expect("POST", path, {})
        if result.get("type") == "abort" and result.get("reason") == "already_configured":
            log(f"{step} entry exists already")
            return result
        if result.get("type") != "create_entry":
            raise DemoError(f"step {step!r} did not create an entry: {result}")
        log(f"added {result.get('title')!r} ({step})")
        return result

    async def link_meter(self, host: str) -> None:
        """Add the IAMMETER meter at ``host``: a meter of the cloud account links to it."""
        flow = await self._expect("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
        path = f"/api/config/config_entries/flow/{flow['flow_id']}"
        await self._expect("POST", path, {"next_step_id": "local"})
        result = await self._expect("POST", path, {"host": host})
        if result.get("step_id") == "iammeter_link_confirm":
            result = await self._expect("POST", path, {})
        if result.get("reason") not in ("iammeter_linked", "already_configured"):
            raise DemoError(f"linking the meter at {host} failed: {result}")
        log(f"IAMMETER meter at {host}: live values linked to its cloud account")

    async def pair_entry(self, device: dict[str, Any], ca_file: str) -> None:
        """Add a simulated HomeWizard API v2 ``device`` by its address, pressing its button while
        the pairing step waits; log how long after the press the flow finished."""
        flow = await self._expect("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
        path = f"/api/config/config_entries/flow/{flow['flow_id']}"
        await self._expect("POST", path, {"next_step_id": "local"})
        result = await self._expect("POST", path, {"host": device["host"]})
        if result.get("type") == "abort" and result.get("reason") == "already_configured":
            log(f"{device['profile']} entry exists already")
            return
        if result.get("step_id") != "pair_confirm":
            raise DemoError(f"{device['host']} did not lead to the pairing: {result}")
        result = await self._expect("POST", path, {})
        if result.get("type") != "progress":
            raise DemoError(f"the pairing did not wait for the button: {result}")
        await press_button(self.session, device, ca_file)
        pressed = time.monotonic()

        async def finished() -> dict[str, Any] | None:
            status, answer = await self.request("GET", path)
            if status == 200 and answer.get("type") == "progress":
                return None
            if status == 200 and answer.get("type") != "create_entry":
                raise DemoError(f"the pairing ended with {answer}")
            return answer if status == 200 else {}  # 404: it finished (and was removed)

        await until(f"the pairing of {device['host']}", finished, 70, every=0.05)
        log(f"paired {device['profile']} {time.monotonic() - pressed:.2f} s after the press")

    async def wait_for_entries_loaded(self) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            entries = await self.entries()
            states = {entry["state"] for entry in entries}
            if states - {"loaded", "not_loaded", "setup_in_progress", "setup_retry"}:
                raise DemoError(f"an entry failed to set up: {entries}")
            return entries if entries and states == {"loaded"} else None

        return await until("the Meter Hub entries to load", probe, self.timeout)

    # --- energy dashboard ------------------------------------------------------------------

    async def energy_sources(self, simulator: dict[str, Any] | None) -> dict[str, list[str]]:
        """The integration's counters by use: grid import/export, gas, water, solar, devices.

        The grid is the IAMMETER meter with net metering (it measures the whole place, and the
        cloud keeps its history), else a HomeWizard P1 meter's import and export; gas and water
        are the counters of those device classes. IAMMETER meters: with the simulator's
        description at hand, a meter that exports is solar (its export counter), and the others
        are individual devices (their import counter, with their power); without it, every
        other energy import counter is a device.
        """
        registry = await self.ws("config/entity_registry/list")
        devices = {d["id"]: d for d in await self.ws("config/device_registry/list")}
        states = {
            state["entity_id"]: state for state in await self._expect("GET", "/api/states", None)
        }
        cloud_meters = {m["sn"]: m for m in (simulator or {}).get("cloud", {}).get("meters", [])}
        found: dict[str, list[str]] = {
            "grid_import": [],
            "grid_export": [],
            "gas": [],
            "water": [],
            "solar": [],
            "devices": [],
            "device_power": [],
            "grid_power": [],
            "battery_import": [],
            "battery_export": [],
        }
        power: dict[str, str] = {}  # device id -> its power sensor
        for entity in registry:
            state = states.get(entity["entity_id"])
            if entity["platform"] == DOMAIN and state and entity.get("translation_key") == "power":
                power[entity.get("device_id") or ""] = entity["entity_id"]
        for entity in sorted(registry, key=lambda e: e["entity_id"]):
            state = states.get(entity["entity_id"])
            if entity["platform"] != DOMAIN or entity.get("disabled_by") or state is None:
                continue
            attributes = state["attributes"]
            if attributes.get("state_class") != "total_increasing":
                continue
            device_id = entity.get("device_id") or ""
            device = devices.get(device_id, {})
            p1 = "P1" in " ".join(str(device.get(k) or "") for k in ("model", "model_id"))
            battery = device.get("model_id") == "HWE-BAT"
            meter = cloud_meters.get(device.get("serial_number") or "")
            key, device_class = entity.get("translation_key"), attributes.get("device_class")
            if device_class in ("gas", "water"):
                found[device_class].append(entity["entity_id"])
            elif device_class != "energy" or key not in ("energy_import", "energy_export"):
                continue
            elif battery:  # import: into the battery, export: out of it
                found[f"battery_{key.removeprefix('energy_')}"].append(entity["entity_id"])
            elif p1:
                found[f"grid_{key.removeprefix('energy_')}"].append(entity["entity_id"])
                if key == "energy_import" and power.get(device_id):
                    found["grid_power"].append(power[device_id])
            elif meter is not None and meter["exports"]:
                if key == "energy_export":
                    found["solar"].append(entity["entity_id"])
            elif meter is not None and meter["net_metering"]:
                # Before the P1 meter's (whose statistics start when it is added).
                found[f"grid_{key.removeprefix('energy_')}"].insert(0, entity["entity_id"])
                if key == "energy_import" and power.get(device_id):
                    found["grid_power"].insert(0, power[device_id])
            elif key == "energy_import":
                found["devices"].append(entity["entity_id"])
                found["device_power"].append(power.get(device_id, ""))
        for use in ("grid_import", "grid_export", "grid_power"):
            del found[use][1:]  # one grid
        return found

    async def wait_for_history(self, statistic_id: str) -> None:
        """Wait until yesterday's hours of ``statistic_id`` are in the statistics (the backfill
        of a new IAMMETER account); log how long after the account was added."""
        entry = next(e for e in await self.entries() if e["title"].startswith("IAMMETER"))
        start = time.time() - 2 * 86400

        async def probe() -> int | None:
            found = await self.ws(
                "recorder/statistics_during_period",
                start_time=time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(start)),
                statistic_ids=[statistic_id],
                period="hour",
                types=["sum"],
            )
            return len(rows) if len(rows := found.get(statistic_id, [])) >= 24 else None

        hours = await until(f"the last days of {statistic_id}", probe, self.timeout)
        log(
            f"statistics visible: {hours} hours of {statistic_id} since 2 days ago, "
            f"{time.time() - entry['created_at']:.1f} s after the IAMMETER account was added"
        )

    async def save_energy_prefs(self, found: dict[str, list[str]]) -> dict[str, Any]:
        """Energy preferences in the shape of the running Home Assistant's version."""
        _, config = await self.request("GET", "/api/config")
        year, month = (int(part) for part in config["version"].split(".")[:2])
        price = {"entity_energy_price": None, "number_energy_price": None}
        sources: list[dict[str, Any]] = []
        imports, exports = found["grid_import"][:1], found["grid_export"][:1]
        if (year, month) >= (2026, 3):  # one source per import/export pair
            sources += [
                {
                    "type": "grid",
                    "stat_energy_from": imports[0] if imports else None,
                    "stat_energy_to": exports[0] if exports else None,
                    "stat_cost": None,
                    "stat_compensation": None,
                    **price,
                    "entity_energy_price_export": None,
                    "number_energy_price_export": None,
                    "cost_adjustment_day": 0.0,
                }
            ]
        elif imports or exports:  # the legacy shape: flow_from and flow_to lists
            sources.append(
                {
                    "type": "grid",
                    "flow_from": [
                        {"stat_energy_from": s, "stat_cost": None, **price} for s in imports
                    ],
                    "flow_to": [
                        {"stat_energy_to": s, "stat_compensation": None, **price} for s in exports
                    ],
                    "power": [{"stat_rate": s} for s in found["grid_power"][:1]],
                    "cost_adjustment_day": 0.0,
                }
            )
        sources += [
            {"type": "solar", "stat_energy_from": s, "config_entry_solar_forecast": None}
            for s in found["solar"]
        ]
        sources += [
            {"type": "battery", "stat_energy_from": out, "stat_energy_to": into}
            for out, into in zip(found["battery_export"], found["battery_import"], strict=True)
        ]
        for kind in ("gas", "water"):
            sources += [
                {"type": kind, "stat_energy_from": s, "stat_cost": None, **price}
                for s in found[kind]
            ]
        devices: list[dict[str, Any]] = [
            {"stat_consumption": s, **({"stat_rate": rate} if rate else {})}
            for s, rate in zip(found["devices"], found["device_power"], strict=True)
        ]
        prefs = {"energy_sources": sources, "device_consumption": devices}
        await self.ws("energy/save_prefs", **prefs)
        return prefs


async def press_button(
    session: aiohttp.ClientSession, device: dict[str, Any], ca_file: str
) -> None:
    """Press the simulated button of a v2 device (its certificate checked against ``ca_file``)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.hostname_checks_common_name = True
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # the device certificates have no extensions
    async with session.post(
        device["press"], ssl=context, server_hostname=device["certificate_name"]
    ) as answer:
        if answer.status != 204:
            raise DemoError(f"pressing the button of {device['host']}: HTTP {answer.status}")


async def _energy(hass: HomeAssistant, simulator: dict[str, Any] | None) -> None:
    async def probe() -> dict[str, list[str]] | None:
        found = await hass.energy_sources(simulator)
        return found if found["grid_import"] and found["gas"] and found["water"] else None

    found = await until("the grid, gas and water sensors", probe, hass.timeout)
    await hass.save_energy_prefs(found)
    for use, entity_ids in found.items():
        if use not in ("device_power", "grid_power"):
            log(f"energy dashboard, {use.replace('_', ' ')}: {', '.join(entity_ids) or '-'}")
    if simulator is not None:  # the IAMMETER account: its last week is there from the start
        await hass.wait_for_history(found["grid_import"][0])


async def _run(args: argparse.Namespace) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        hass = HomeAssistant(session, args.url, args.timeout)
        try:
            await hass.wait_until_up()
            await hass.onboard(args.name, args.username, args.password)
            if args.command == "demo":
                simulator = args.simulator_status
                cloud = simulator["cloud"]
                existing = await hass.entries()
                if not any(e["title"] == cloud["username"] for e in existing):
                    await hass.add_entry(
                        "cloud",
                        {
                            "username": cloud["username"],
                            "password": cloud["password"],
                            "server": cloud["url"],
                        },
                    )
                # The solar meter answers locally too: its live power next to the cloud's history.
                for meter in cloud["meters"]:
                    if "local_host" in meter:
                        await hass.link_meter(meter["local_host"])
                # The socket that can be switched from the dashboard (API v1).
                await hass.add_entry("local", {"host": simulator["devices"]["socket"]["host"]})
                # A P1 meter with a battery behind it, and the battery, on API v2 (paired).
                v2 = simulator["homewizard_v2"]
                for device in ("p1v2", "battery"):
                    await hass.pair_entry(v2["devices"][device], v2["ca_file"])
                await hass.wait_for_entries_loaded()
            if args.command in ("demo", "energy"):
                await _energy(hass, args.simulator_status)
        finally:
            await hass.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["demo", "onboard", "energy"])
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--simulator", help="the simulator's ready file (demo)")
    parser.add_argument("--name", default="Demo")
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for each wait")
    args = parser.parse_args()
    if args.command == "demo" and not args.simulator:
        parser.error("demo needs --simulator")
    args.simulator_status = None
    if args.simulator:
        args.simulator_status = json.loads(Path(args.simulator).read_text(encoding="utf-8"))
    try:
        asyncio.run(_run(args))
    except DemoError as err:
        log(f"FAILED: {err}")
        sys.exit(1)


if __name__ == "__main__":
    main()
