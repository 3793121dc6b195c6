"""The browser test: Meter Hub set up the way a user does it, in the real Home Assistant frontend.

Run by ``scripts/e2e``, which provisions Chromium and Playwright, starts the simulator and Home
Assistant (through ``scripts/develop``) and onboards a user through the API. This script then
drives headless Chromium (Debian's, through Playwright's ``executable_path``):

1. log in on Home Assistant's login page;
2. Settings -> Devices & services -> Add integration -> Meter Hub -> HomeWizard device: first with
   the simulated P1 meter's local API switched off (the form must say so), then on; finish and
   check the device pages of the P1 meter and its gas and water meters: sensors with values and
   units;
3. the same for an IAMMETER cloud account: a wrong password first (the form must say so), then
   the right one; check every meter's device page;
4. put the sensors into the energy dashboard (through the API) and look at the energy settings
   and the dashboard, today and yesterday: yesterday must show consumption (the IAMMETER
   meters' week before the setup, written at once), not the "no data" text;
5. in Dutch: the user switches their language to Dutch (Home Assistant's own language follows),
   adds the simulated energy socket the same way (local API off, then on) and checks its device
   page: the dialog and the sensors must show nl.json's texts;
6. switch the socket off on its device page: its power drops to 0 W (read back from the
   simulated socket, which measures nothing while off); switch it on again;
7. HomeWizard API v2 (still in Dutch): add the simulated v2 P1 meter by its address; the pairing
   step waits, the script presses the simulated button (``POST /_sim/press``) and the flow
   finishes by itself; it prints how long after the press the dialog showed the new devices,
   then checks the P1 meter's device page (its battery group's power among the sensors).
8. (run before the Dutch steps) add a simulated IAMMETER meter by its address through the same local
   device step, and check its device page: power, the net counters, frequency.

No text on the flow dialogs or the device pages may be a raw translation key. Each step is
screenshotted into ``--artifacts``; every wait is for a condition, with a deadline. The first
failing step ends the run (later steps build on it) with a screenshot of what the browser showed;
the script prints one line per step and a closing ``N passed, N failed`` line, and exits non-zero
on a failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import re
import ssl
import subprocess
import sys
import time
import traceback
from typing import Any
import urllib.request

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

CHROMIUM: str = "/usr/bin/chromium"
# As root on a closed network: no sandbox (root), no GPU (no screen), and none of Chromium's own
# connections (background networking, component updates, sync, QUIC), which the network refuses.
CHROMIUM_ARGS: list[str] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 1000}
# Text that is a translation key rather than a translation: what Home Assistant shows when a
# string is missing from translations/en.json (or the frontend's own), e.g.
# "component.meter_hub.config.step.local.title" or "config.step.cloud.data.server".
RAW_KEY = re.compile(
    r"component\.meter_hub\.|\bconfig\.(step|error|abort|progress)\.|\boptions\.step\."
    r"|\bentity\.(sensor|binary_sensor)\.|\bdevice_automation\.|\bmeter_hub\.(config|entity)\b"
    r"|\bui\.(panel|dialogs|components|common)\.[a-z_]+\."
)
# What the energy dashboard shows for a period without statistics.
NO_DATA = "There is no data to show"
# A number with a unit, as Home Assistant formats a state: "15,234.628 kWh", "-2,795 W", "64%".
# Dutch groups and decimals the other way round: "15.234,628 kWh".
VALUE_WITH_UNIT = r"(^|\s)-?\d[\d,.]* ?{unit}(\s|$)"
TRANSLATIONS = Path(__file__).parents[1] / "custom_components" / "meter_hub" / "translations"
# The frontend's own labels the steps look for, in the user's language (Home Assistant's frontend
# translations: ui.panel.config.integrations.*, ui.common.submit, state.default.*, ...).
FRONTEND: dict[str, dict[str, str]] = {
    "en": {
        "settings": "Settings",
        "devices_services": "Devices & services",
        "add_integration": "Add integration",
        "search_brand": "Search for a brand name",
        "device_name": "Device name",
        "finish": "Finish",
        "finish_skip": "Skip and finish",
        "sensors": "Sensors",
        "submit": "Submit",
        "unavailable": "Unavailable",
        "unknown": "Unknown",
    },
    "nl": {
        "settings": "Instellingen",
        "devices_services": "Apparaten en diensten",
        "add_integration": "Integratie toevoegen",
        "search_brand": "Zoek naar een merknaam",
        "device_name": "Apparaatnaam",
        "finish": "Voltooien",
        "finish_skip": "Overslaan en voltooien",
        "sensors": "Sensoren",
        "submit": "Verzenden",
        "unavailable": "Niet beschikbaar",
        "unknown": "Onbekend",
    },
}

# Device pages: device name -> sensors that must be there (row name -> unit).
LOCAL_DEVICES: dict[str, dict[str, str]] = {
    "P1 meter": {
        "Energy import": "kWh",
        "Energy export": "kWh",
        "Energy import tariff 1": "kWh",
        "Power": "W",
        "Power phase 1": "W",
        "Voltage phase 1": "V",
        "Current phase 1": "A",
        "Frequency": "Hz",
    },
    "Gas meter": {"Gas": "m³"},
    "Water meter": {"Water": "m³"},
}
# The simulator's P1 meter on API v2 (its product name).
V2_P1 = "P1 Meter"
SINGLE_PHASE = {"Energy import": "kWh", "Energy export": "kWh", "Power": "W", "Voltage": "V"}
THREE_PHASE = {
    "Energy import": "kWh",
    "Energy export": "kWh",
    "Power": "W",
    "Power phase 1": "W",
    "Voltage phase 1": "V",
    "Current phase 3": "A",
}
# The simulated meter added by its address (``python -m simulator``'s ``iammeter_local``).
IAMMETER_LOCAL = "wem3080t_nem"
IAMMETER_LOCAL_SENSORS = {**THREE_PHASE, "Grid power": "W", "Frequency": "Hz"}

# Deep text of a DOM subtree: text nodes and the labels of elements, through open shadow roots
# (Home Assistant's frontend is made of web components; innerText stops at each shadow root).
DEEP_TEXT_JS = """
(root) => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.textContent.trim();
      if (text) out.push(text);
      return;
    }
    if (node.nodeType === Node.ELEMENT_NODE) {
      if (node.tagName === "STYLE" || node.tagName === "SCRIPT") return;
      for (const name of ["label", "title", "aria-label", "placeholder", "helper", "header"]) {
        const value = node.getAttribute(name);
        if (value) out.push(value);
      }
      if (node.shadowRoot) walk(node.shadowRoot);
    } else if (node.nodeType !== Node.DOCUMENT_FRAGMENT_NODE && node.nodeType !== Node.DOCUMENT_NODE) {
      return;
    }
    for (const child of node.childNodes) walk(child);
  };
  walk(root || document);
  return out.join("\\n");
}
"""


class StepFailed(AssertionError):
    """An assertion of a step did not hold."""


class Run:
    """The browser session, the artifacts folder and the simulator's description."""

    def __init__(self, args: argparse.Namespace, page: Page) -> None:
        self.args = args
        self.page = page
        self.url = args.url.rstrip("/")
        self.out: Path = args.artifacts
        self.simulator: dict[str, Any] = json.loads(args.simulator.read_text(encoding="utf-8"))
        self.shots: list[str] = []
        self.checked_texts = 0
        self.language = "en"
        self.ui = FRONTEND["en"]
        self.strings: dict[str, Any] = {}
        self.use_language("en")

    def use_language(self, language: str) -> None:
        """Expect the frontend's and Meter Hub's texts in ``language`` from now on."""
        self.language = language
        self.ui = FRONTEND[language]
        self.strings = json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8"))

    def text(self, key: str, **placeholders: str) -> str:
        """Meter Hub's string ``key`` (dotted, as in the translation file) in the current language."""
        node: Any = self.strings
        for part in key.split("."):
            node = node[part]
        return str(node).format(**placeholders)

    # --- helpers ---------------------------------------------------------------------------

    def shot(self, name: str) -> None:
        """Screenshot the page as NN-name.png."""
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=path)
        self.shots.append(path.name)

    def wait_still(self, root: Locator, seconds: float = 15.0) -> None:
        """Wait until ``root`` looks the same twice in a row (a chart's animation has ended)."""
        deadline = time.monotonic() + seconds
        last = root.screenshot()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if (now := root.screenshot()) == last:
                return
            last = now
        raise StepFailed(f"{root} kept changing for {seconds:.0f} s")

    def deep_text(self, root: Locator | None = None) -> str:
        if root is None:
            return str(self.page.evaluate(DEEP_TEXT_JS))
        return str(root.evaluate(DEEP_TEXT_JS))

    def assert_no_raw_keys(self, where: str, root: Locator | None = None) -> None:
        text = self.deep_text(root)
        found = sorted({line for line in text.splitlines() if RAW_KEY.search(line)})
        self.checked_texts += 1
        if found:
            raise StepFailed(f"raw translation keys on {where}: {found}")

    def flow(self) -> Locator:
        return self.page.locator("dialog-data-entry-flow")

    def switch_api(self, device: str, enabled: bool) -> None:
        """The simulator's switch of a device's local API."""
        url = self.simulator["devices"][device]["switch"]
        body = json.dumps(enabled).encode()
        with urllib.request.urlopen(
            urllib.request.Request(url, data=body, method="POST"), timeout=10
        ) as answer:
            state = json.load(answer)
        if state.get("api_enabled") is not enabled:
            raise StepFailed(f"the simulator did not switch {device}: {state}")

    # --- navigation the way a user does it -------------------------------------------------

    def open_integrations(self) -> None:
        """Settings -> Devices & services."""
        page = self.page
        page.locator("ha-sidebar").get_by_text(self.ui["settings"], exact=True).click()
        page.wait_for_url("**/config/dashboard")
        page.get_by_text(self.ui["devices_services"], exact=True).first.click()
        page.wait_for_url("**/config/integrations/dashboard")
        expect(page.get_by_role("button", name=self.ui["add_integration"])).to_be_visible()

    def start_flow(self, prefix: str) -> None:
        """Add integration -> search "Meter Hub" -> pick it: the menu of the first step."""
        page = self.page
        self.open_integrations()
        page.get_by_role("button", name=self.ui["add_integration"]).click()
        search = page.get_by_label(self.ui["search_brand"])
        search.fill("Meter Hub")
        item = page.locator("ha-dialog ha-integration-list-item").filter(has_text="Meter Hub")
        expect(item).to_have_count(1)
        self.shot(f"{prefix}-search")
        item.click()
        flow = self.flow()
        expect(flow.get_by_text(self.text("config.step.user.description"))).to_be_visible()
        self.shot(f"{prefix}-menu")
        self.assert_no_raw_keys("the menu step", flow)

    def finish_button(self) -> Locator:
        """The button of the "created" step."""
        labels = "|".join(re.escape(self.ui[label]) for label in ("finish_skip", "finish"))
        return self.flow().get_by_role("button", name=re.compile(f"^({labels})$"))

    def finish_flow(self, prefix: str, devices: list[str]) -> None:
        """The "created" step lists ``devices``; finish it and wait for the dialog to close."""
        flow = self.flow()
        finish = self.finish_button()
        expect(finish).to_be_visible()
        names = flow.get_by_role("textbox", name=self.ui["device_name"])  # one per new device
        expect(names).to_have_count(len(devices))
        shown = sorted(names.nth(i).input_value() for i in range(len(devices)))
        if shown != sorted(devices):
            raise StepFailed(f"the flow created {shown}, expected {sorted(devices)}")
        self.shot(f"{prefix}-created")
        self.assert_no_raw_keys("the created step", flow)
        finish.click()
        expect(flow.locator("ha-dialog")).to_have_count(0)

    def open_device(self, name: str) -> None:
        """Settings -> Devices & services -> Meter Hub -> the device ``name``."""
        page = self.page
        self.open_integrations()
        page.locator("ha-integration-card").filter(has_text="Meter Hub").click()
        page.wait_for_url("**/config/integrations/integration/meter_hub")
        row = page.locator("ha-config-entry-device-row").filter(
            has=page.locator("div[slot=headline]", has_text=re.compile(f"^{re.escape(name)}$"))
        )
        expect(row).to_have_count(1)
        row.locator("div[slot=headline]").click()
        page.wait_for_url("**/config/devices/device/**")

    def check_device_page(self, name: str, expected: dict[str, str], prefix: str) -> None:
        """The device page of ``name`` lists ``expected`` sensors with values in their units."""
        self.open_device(name)
        page = self.page
        card = page.locator("ha-device-entities-card").filter(has_text=self.ui["sensors"])
        rows = card.locator("hui-sensor-entity-row")
        for sensor, unit in expected.items():
            row = rows.filter(has=page.get_by_text(sensor, exact=True))
            expect(row, f"{name}: sensor {sensor!r}").to_have_count(1)
            value = re.compile(VALUE_WITH_UNIT.format(unit=re.escape(unit)))
            expect(row, f"{name}: {sensor} in {unit}").to_contain_text(value)
        bad = []
        for index in range(rows.count()):
            lines = self.deep_text(rows.nth(index)).splitlines()
            if not lines or lines[-1] in (self.ui["unavailable"], self.ui["unknown"], ""):
                bad.append(lines)
        if bad:
            raise StepFailed(f"{name}: sensors without a value: {bad}")
        page.set_viewport_size({"width": 1280, "height": 1600})  # the whole page in the shot
        self.shot(f"{prefix}-device-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}")
        page.set_viewport_size(VIEWPORT)
        self.assert_no_raw_keys(f"the device page of {name}")
        log(f"  {name}: {rows.count()} sensors, {len(expected)} checked with their units")

    # --- the steps -------------------------------------------------------------------------

    def login(self) -> None:
        page = self.page
        page.goto(self.url + "/")
        page.wait_for_url("**/auth/authorize**")
        page.locator("input[name=username]").fill(self.args.username)
        page.locator("input[name=password]").fill(self.args.password)
        self.shot("login")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("ha-sidebar")).to_be_visible()
        expect(page.locator("ha-sidebar").get_by_text("Settings", exact=True)).to_be_visible()
        self.shot("logged-in")

    def submit_host(self, host: str, prefix: str) -> Locator:
        """The local device step with ``host`` submitted; its submit button."""
        self.start_flow(prefix)
        flow = self.flow()
        flow.get_by_text(self.text("config.step.user.menu_options.local")).click()
        field = flow.get_by_label(self.text("config.step.local.data.host"))
        expect(field).to_be_visible()
        self.shot(f"{prefix}-form")
        self.assert_no_raw_keys("the local device form", flow)
        field.fill(host)
        submit = flow.get_by_role("button", name=self.ui["submit"])
        submit.click()
        return submit

    def add_local_device(self, device: str, created: list[str], prefix: str) -> None:
        """Add the simulated HomeWizard ``device``: local API off (the form says so), then on."""
        self.switch_api(device, enabled=False)
        submit = self.submit_host(self.simulator["devices"][device]["host"], prefix)
        flow = self.flow()
        api_off = self.text("config.error.api_not_enabled").split(". ")[0]
        expect(flow.get_by_text(api_off, exact=False)).to_be_visible()
        self.shot(f"{prefix}-api-off")
        self.assert_no_raw_keys("the HomeWizard form with an error", flow)
        self.switch_api(device, enabled=True)
        submit.click()
        self.finish_flow(prefix, created)

    def local_flow(self) -> None:
        self.add_local_device("p1", ["P1 meter", "Gas meter", "Water meter"], "local")

    def local_devices(self) -> None:
        for name, expected in LOCAL_DEVICES.items():
            self.check_device_page(name, expected, "local")

    def cloud_flow(self) -> None:
        cloud = self.simulator["cloud"]
        self.start_flow("cloud")
        flow = self.flow()
        flow.get_by_text("IAMMETER cloud account (all meters of the account)").click()
        username = flow.get_by_label("Username")
        expect(username).to_be_visible()
        self.shot("cloud-form")
        self.assert_no_raw_keys("the IAMMETER form", flow)
        username.fill(cloud["username"])
        password = flow.get_by_role("textbox", name="Password")
        password.fill("not-the-password")
        flow.get_by_label("Server").fill(cloud["url"])
        flow.get_by_role("button", name="Submit").click()
        # the simulator is plain http: the flow asks before anything is sent to it
        expect(flow.get_by_text("Unencrypted connection").first).to_be_visible()
        self.shot("cloud-insecure-server")
        self.assert_no_raw_keys("the unencrypted-server warning", flow)
        flow.get_by_role("button", name="Submit").click()
        expect(flow.get_by_text("The user name or password is wrong.")).to_be_visible()
        self.shot("cloud-wrong-password")
        self.assert_no_raw_keys("the IAMMETER form with an error", flow)
        password.fill(cloud["password"])
        self.shot("cloud-form-filled")
        flow.get_by_role("button", name="Submit").click()
        self.finish_flow("cloud", [f"IAMMETER {meter['sn']}" for meter in cloud["meters"]])

    def cloud_devices(self) -> None:
        for meter in self.simulator["cloud"]["meters"]:
            expected = SINGLE_PHASE if meter["phases"] == 1 else THREE_PHASE
            self.check_device_page(f"IAMMETER {meter['sn']}", expected, "cloud")

    def energy(self) -> None:
        subprocess.run(
            [
                self.args.ha_python,
                str(Path(__file__).parents[1] / "scripts" / "ha_demo.py"),
                "energy",
                "--url",
                self.url,
                "--username",
                self.args.username,
                "--password",
                self.args.password,
                "--simulator",
                str(self.args.simulator),
                "--timeout",
                "60",
            ],
            check=True,
            timeout=120,
        )
        page = self.page
        page.set_viewport_size({"width": 1280, "height": 1500})
        # Settings -> Dashboards -> Energy: the configured sources.
        page.goto(self.url + "/config/energy")
        grid = next(m["sn"] for m in self.simulator["cloud"]["meters"] if m["net_metering"])
        for source in (
            f"IAMMETER {grid} Energy import",
            f"IAMMETER {grid} Energy export",
            "Gas meter Gas",
        ):
            expect(page.get_by_text(source, exact=True).first).to_be_visible()
        expect(page.get_by_text("Water meter Water", exact=True).first).to_be_visible()
        self.shot("energy-settings")
        # The energy dashboard from the sidebar.
        page.locator("ha-sidebar").get_by_text("Energy", exact=True).click()
        page.wait_for_url("**/energy**")
        expect(page.locator("hui-energy-distribution-card").first).to_be_visible()
        expect(page.locator("hui-energy-sources-table-card").first).to_contain_text("Grid")
        self.shot("energy-dashboard")
        # Yesterday: the hours Home Assistant did not record itself, from the cloud's history.
        page.locator("hui-energy-period-selector").first.get_by_label("Previous").click()
        expect(page.locator("hui-energy-distribution-card").first).to_contain_text(
            re.compile(r"[1-9][\d,]*(\.\d+)? kWh")
        )
        usage = page.locator("hui-energy-usage-graph-card").first
        expect(usage.locator("ha-chart-base")).to_be_visible()
        self.wait_still(usage)
        if NO_DATA in self.deep_text():
            raise StepFailed(f"the energy dashboard says {NO_DATA!r} for yesterday")
        self.shot("energy-dashboard-yesterday")
        page.set_viewport_size(VIEWPORT)

    def speak_dutch(self) -> None:
        """The user picks Dutch on their profile page; Home Assistant's own language follows."""
        page = self.page
        page.goto(self.url + "/profile/general")
        row = page.locator("ha-pick-language-row")
        expect(row).to_be_visible()
        # Home Assistant's language (Settings -> System -> General) names the entities it creates.
        page.evaluate(
            "(language) => document.querySelector('home-assistant').hass.callWS("
            "{type: 'config/core/update', language})",
            "nl",
        )
        # What the profile's language picker fires when the user picks a language.
        row.evaluate(
            "(row, language) => row.dispatchEvent(new CustomEvent('hass-language-select',"
            " {detail: language, bubbles: true, composed: true}))",
            "nl",
        )
        self.use_language("nl")
        expect(
            page.locator("ha-sidebar").get_by_text(self.ui["settings"], exact=True)
        ).to_be_visible()
        self.shot("nl-profile")

    def dutch_socket_flow(self) -> None:
        self.add_local_device("socket", ["Energy Socket"], "nl-local")

    def dutch_socket_device(self) -> None:
        sensors = {
            self.text("entity.sensor.power.name"): "W",
            self.text("entity.sensor.power_phase.name", phase="1"): "W",
            self.text("entity.sensor.energy_import.name"): "kWh",
            self.text("entity.sensor.energy_export.name"): "kWh",
        }
        self.check_device_page("Energy Socket", sensors, "nl-local")

    def iammeter_local_flow(self) -> None:
        """The same local device step, with the address of a simulated IAMMETER meter."""
        meter = self.simulator["iammeter_local"][IAMMETER_LOCAL]
        self.submit_host(meter["host"], "iammeter-local")
        self.finish_flow("iammeter-local", [f"IAMMETER {meter['serial']}"])

    def iammeter_local_device(self) -> None:
        """Its device page: power and the net counters, read from the meter every second."""
        serial = self.simulator["iammeter_local"][IAMMETER_LOCAL]["serial"]
        self.check_device_page(f"IAMMETER {serial}", IAMMETER_LOCAL_SENSORS, "iammeter-local")

    def switch_socket(self) -> None:
        """Off on the device page: the socket reports 0 W; then on again."""
        self.open_device("Energy Socket")
        page = self.page
        power = (
            page.locator("ha-device-entities-card")
            .filter(has_text=self.ui["sensors"])
            .locator("hui-sensor-entity-row")
            .filter(has=page.get_by_text(self.text("entity.sensor.power.name"), exact=True))
        )
        # The controls card: the socket's own switch (the configuration card has a button too).
        toggle = (
            page.locator("ha-device-entities-card")
            .filter(has=page.locator("hui-toggle-entity-row"))
            .filter(has_not=page.locator("hui-button-entity-row"))
            .locator("ha-entity-toggle")
        )
        expect(toggle, "the socket's switch").to_have_count(1)
        switch = toggle.locator("ha-switch, ha-md-switch, [role=switch]").first
        expect(switch).to_be_visible()
        switch.click()
        expect(power, "power of the switched-off socket").to_contain_text(
            re.compile(r"(?<![\d.,])0([.,]0+)? ?W")
        )
        self.shot("nl-socket-off")
        switch.click()
        expect(power, "power of the socket switched on again").not_to_contain_text(
            re.compile(r"(?<![\d.,])0([.,]0+)? ?W"), timeout=60_000
        )
        self.shot("nl-socket-on")

    def press_button(self, device: dict[str, Any]) -> None:
        """Press the simulated button of a v2 device, as the user does on the real one."""
        context = ssl.create_default_context(cafile=self.simulator["homewizard_v2"]["ca_file"])
        context.check_hostname = False  # the simulator's own control; its CA is checked
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # device certificates have no extensions
        request = urllib.request.Request(device["press"], method="POST")
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            if answer.status != 204:
                raise StepFailed(f"pressing the button of {device['host']}: {answer.status}")

    def v2_pairing(self) -> None:
        """Add the v2 P1 meter by address; the script presses its button while the flow waits."""
        device = self.simulator["homewizard_v2"]["devices"]["p1v2"]
        self.start_flow("v2")
        flow = self.flow()
        flow.get_by_text(self.text("config.step.user.menu_options.local")).click()
        host = flow.get_by_label(self.text("config.step.local.data.host"))
        expect(host).to_be_visible()
        host.fill(device["host"])
        flow.get_by_role("button", name=self.ui["submit"]).click()
        title = self.text("config.step.pair_confirm.title", name=V2_P1)
        expect(flow.get_by_text(title).first).to_be_visible()
        self.shot("v2-pair-confirm")
        self.assert_no_raw_keys("the pairing's first step", flow)
        flow.get_by_role("button", name=self.ui["submit"]).click()
        waiting = self.text("config.progress.pair_p1", name=V2_P1).split(":")[0]
        expect(flow.get_by_text(waiting, exact=False).first).to_be_visible()
        time.sleep(2)  # the user walks to the meter: the flow keeps waiting
        expect(flow.get_by_text(waiting, exact=False).first).to_be_visible()
        self.shot("v2-waiting-for-the-button")
        self.assert_no_raw_keys("the pairing's waiting step", flow)
        self.press_button(device)
        pressed = time.monotonic()
        expect(self.finish_button()).to_be_visible()
        log(f"  pairing finished {time.monotonic() - pressed:.2f} s after the button press")
        externals = [self.text(f"device.{kind}.name") for kind in ("gas_meter", "water_meter")]
        self.finish_flow("v2", [V2_P1, *externals])

    def v2_device(self) -> None:
        sensors = {
            self.text("entity.sensor.power.name"): "W",
            self.text("entity.sensor.power_phase.name", phase="1"): "W",
            self.text("entity.sensor.energy_import.name"): "kWh",
            self.text("entity.sensor.battery_group_power.name"): "W",
        }
        self.check_device_page(V2_P1, sensors, "v2")


def log(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Meter Hub in the Home Assistant frontend")
    parser.add_argument("--url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--simulator", type=Path, required=True, help="its ready file")
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--ha-python", required=True, help="Python of the develop venv")
    args = parser.parse_args()
    args.artifacts.mkdir(parents=True, exist_ok=True)
    console = (args.artifacts / "browser-console.log").open("w", encoding="utf-8")

    passed: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=VIEWPORT, locale="en-US", timezone_id="Europe/Amsterdam")
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.on("console", lambda m: console.write(f"{m.type}: {m.text}\n"))
        page.on("pageerror", lambda e: console.write(f"pageerror: {e}\n"))
        run = Run(args, page)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("log in", run.login),
            ("HomeWizard: add the P1 meter (local API off, then on)", run.local_flow),
            ("HomeWizard: device pages", run.local_devices),
            ("IAMMETER: add the cloud account (wrong password, then right)", run.cloud_flow),
            ("IAMMETER: device pages", run.cloud_devices),
            ("energy dashboard", run.energy),
            ("IAMMETER: add a meter on the network by its address", run.iammeter_local_flow),
            ("IAMMETER: the local meter's device page", run.iammeter_local_device),
            ("Dutch: the user's language", run.speak_dutch),
            ("Dutch: add the energy socket (local API off, then on)", run.dutch_socket_flow),
            ("Dutch: device page", run.dutch_socket_device),
            ("Dutch: switch the socket off and on", run.switch_socket),
            ("HomeWizard v2: pair the P1 meter by address (the button pressed)", run.v2_pairing),
            ("HomeWizard v2: device page", run.v2_device),
        ]
        for name, step in steps:
            if failed:
                log(f"SKIP {name}")
                continue
            t0 = time.monotonic()
            try:
                step()
            except Exception as err:  # noqa: BLE001 - report it, keep the evidence
                failed.append(name)
                log(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {err}")
                (args.artifacts / "failure.txt").write_text(
                    f"{name}\n\n{traceback.format_exc()}", encoding="utf-8"
                )
                try:
                    run.shot("FAILURE")
                except Exception as shot_err:  # noqa: BLE001
                    log(f"  (no screenshot of the failure: {shot_err})")
            else:
                passed.append(name)
                log(f"PASS {name} ({time.monotonic() - t0:.1f} s)")
        browser.close()
    console.close()
    log(f"{len(run.shots)} screenshots; {run.checked_texts} pages and dialogs had no raw keys")
    skipped = len(steps) - len(passed) - len(failed)
    log(f"e2e: {len(passed)} passed, {len(failed)} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
