"""Every language speaks all of en.json: the same keys, the same placeholders, no empty string.

en.json is the reference: a language that misses one of its keys, has a key it does not have, or
changes a placeholder of a string fails here, so a change that adds an English string must add it
in every language too (README: "Adding a language").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import importlib
import json
from pathlib import Path
import re
from typing import Any, TypeGuard

from homeassistant.core import HomeAssistant
from homeassistant.generated.languages import LANGUAGES as HA_LANGUAGES
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.entity import EntityDescription
import pytest

from simulator.homewizard import FakeHomeWizard

from .conftest import async_setup_local

COMPONENT = Path(__file__).parent.parent / "custom_components" / "meter_hub"
TRANSLATIONS = COMPONENT / "translations"
SHIPPED = sorted(path.stem for path in TRANSLATIONS.glob("*.json") if path.stem != "en")
# The languages issue 20 asked for; more may come, none of these may go.
REQUIRED = {"nl", "de", "fr", "zh-Hans"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def flatten(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a translation file."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def differences(reference: dict[str, Any], language: dict[str, Any]) -> list[str]:
    """What ``language`` does wrong against ``reference`` (en.json), one line each."""
    english = dict(flatten(reference))
    translated = dict(flatten(language))
    found = [f"missing: {key}" for key in sorted(english.keys() - translated.keys())]
    found += [f"not in en.json: {key}" for key in sorted(translated.keys() - english.keys())]
    for key in sorted(english.keys() & translated.keys()):
        text = translated[key]
        if not isinstance(text, str) or not text.strip():
            found.append(f"empty or not a string: {key}")
            continue
        want, have = set(PLACEHOLDER.findall(english[key])), set(PLACEHOLDER.findall(text))
        if want != have:
            found.append(f"placeholders of {key}: {sorted(have)}, en.json has {sorted(want)}")
    return found


def test_required_languages_are_shipped() -> None:
    """nl, de, fr and zh-Hans exist, under the language codes Home Assistant knows."""
    assert set(SHIPPED) >= REQUIRED
    assert set(SHIPPED) <= set(HA_LANGUAGES)


def test_strings_json_is_en_json() -> None:
    """strings.json (the source) and translations/en.json (what is loaded) say the same."""
    assert load(COMPONENT / "strings.json") == load(TRANSLATIONS / "en.json")


@pytest.mark.parametrize("language", SHIPPED)
def test_language_matches_en_json(language: str) -> None:
    """Every key of en.json, no other key, and each string with the placeholders of en.json."""
    assert (
        differences(load(TRANSLATIONS / "en.json"), load(TRANSLATIONS / f"{language}.json")) == []
    )


def test_differences_catch_each_defect() -> None:
    """The comparison above reports a missing key, an extra key, a changed placeholder."""
    english = {"a": {"b": "Power phase {phase}", "c": "Reading"}}
    assert differences(english, {"a": {"b": "Vermogen fase {phase}", "c": "Stand"}}) == []
    assert differences(english, {"a": {"b": "Vermogen fase {phase}"}}) == ["missing: a.c"]
    assert differences(
        english, {"a": {"b": "Vermogen fase {phase}", "c": "Stand", "d": "Extra"}}
    ) == ["not in en.json: a.d"]
    assert differences(english, {"a": {"b": "Vermogen fase {fase}", "c": "Stand"}}) == [
        "placeholders of a.b: ['fase'], en.json has ['phase']"
    ]
    assert differences(english, {"a": {"b": "Vermogen fase {phase}", "c": " "}}) == [
        "empty or not a string: a.c"
    ]


@pytest.mark.parametrize("device_profile", ["HWE-SKT"])
async def test_entity_names_in_dutch(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, homewizard: FakeHomeWizard
) -> None:
    """With Home Assistant set to Dutch, the entities get nl.json's names, placeholders filled."""
    hass.config.language = "nl"
    entry = await async_setup_local(hass, homewizard)
    names = {
        entity.original_name
        for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    assert names == {
        "Vermogen",
        "Vermogen fase 1",
        "Energie import",
        "Energie export",
        "Wi-Fi SSID",
        "Wi-Fi sterkte",
        None,  # the switch: the socket's own name
        "Schakelaarvergrendeling",
        "Helderheid statuslampje",
        "Cloudverbinding",
        "Identificeren",
    }


async def test_sub_device_names_in_dutch(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, homewizard: FakeHomeWizard
) -> None:
    """The gas and water meters behind a P1 meter are named in Home Assistant's language."""
    hass.config.language = "nl"
    entry = await async_setup_local(hass, homewizard)
    names = {
        device.name
        for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id)
        if device.via_device_id is not None
    }
    assert names == {"Gasmeter", "Watermeter"}


# --- every key the code uses is in strings.json ---------------------------------------------------

# Where a key of each kind may stand in strings.json: (the key above it, or None for a
# translation key's several places). A flow's step, error and abort reason are under any flow's
# ``step``, ``error`` and ``abort`` (config, options, an issue's fix_flow).
_KEY_PARENTS = {
    "reason": {"abort"},
    "error": {"error"},
    "step_id": {"step"},
    "progress_action": {"progress"},
}
_KEY_ARGUMENTS = {"reason", "step_id", "progress_action", "translation_key"}
# A progress step (``async_show_progress``) has no text of its own: its ``progress_action`` has.
_FORMS = {"async_show_form", "async_show_menu"}
# Calls whose first argument is a key: the flow's form error and an abort raised from a helper.
_KEY_CALLS = {"FlowError": "error", "AbortFlow": "reason"}


def _keys_in_strings(tree: dict[str, Any]) -> dict[str, set[str]]:
    """The keys strings.json offers for each kind of use."""
    offered: dict[str, set[str]] = {kind: set() for kind in (*_KEY_PARENTS, "translation_key")}
    for dotted, _ in flatten(tree):
        parts = dotted.split(".")
        for index, part in enumerate(parts[:-1]):
            for kind, parents in _KEY_PARENTS.items():
                if part in parents:
                    offered[kind].add(parts[index + 1])
        # entity.<platform>.<key>, exceptions.<key>, issues.<key>, device.<key>
        if parts[0] == "entity" and len(parts) > 2:
            offered["translation_key"].add(parts[2])
        elif parts[0] in ("exceptions", "issues", "device"):
            offered["translation_key"].add(parts[1])
    return offered


def _keys_in_code(source: str) -> Iterator[tuple[str, str]]:
    """(kind, key) of every literal key in ``source``: keyword arguments, errors, FlowError."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            for keyword in node.keywords:
                if (
                    keyword.arg in _KEY_ARGUMENTS
                    and (keyword.arg != "step_id" or name in _FORMS)
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                ):
                    yield keyword.arg, keyword.value.value
            if name in _KEY_CALLS and node.args and isinstance(node.args[0], ast.Constant):
                yield _KEY_CALLS[name], str(node.args[0].value)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and getattr(target.value, "id", None) == "errors"
                    and isinstance(node.value.value, str)
                ):
                    yield "error", node.value.value


def missing_keys(strings: dict[str, Any], sources: dict[str, str]) -> list[str]:
    """The keys the code uses that strings.json lacks, as ``module: kind key``."""
    offered = _keys_in_strings(strings)
    return sorted(
        f"{module}: {kind} {key}"
        for module, source in sources.items()
        for kind, key in _keys_in_code(source)
        if key not in offered[kind]
    )


def test_every_key_the_code_uses_is_in_strings_json() -> None:
    """Abort reasons, form errors, steps, progress texts and translation keys of the code."""
    sources = {
        str(path.relative_to(COMPONENT)): path.read_text(encoding="utf-8")
        for path in sorted(COMPONENT.rglob("*.py"))
    }
    assert missing_keys(load(COMPONENT / "strings.json"), sources) == []


def test_missing_keys_catch_each_kind() -> None:
    """A key of each kind that strings.json lacks is reported; one it has is not."""
    strings = {
        "config": {
            "step": {"user": {"title": ""}},
            "error": {"cannot_connect": ""},
            "abort": {"gone": ""},
        },
        "entity": {"sensor": {"power": {"name": ""}}},
        "exceptions": {"offline": {"message": ""}},
    }
    source = """
FlowError("cannot_connect"); FlowError("typo")
errors["base"] = "cannot_connect"; errors["base"] = "other"
self.async_abort(reason="gone"); self.async_abort(reason="went"); raise AbortFlow("lost")
self.async_show_form(step_id="user"); self.async_show_form(step_id="host")
self.async_show_progress(step_id="pair", progress_action="press")
SensorEntityDescription(key="p", translation_key="power")
HomeAssistantError(translation_key="offline"); UpdateFailed(translation_key="unplugged")
"""
    assert missing_keys(strings, {"m.py": source}) == [
        "m.py: error other",
        "m.py: error typo",
        "m.py: progress_action press",
        "m.py: reason lost",
        "m.py: reason went",
        "m.py: step_id host",
        "m.py: translation_key unplugged",
    ]


def _is_description(value: object) -> TypeGuard[EntityDescription]:
    # not isinstance: a frozen description class of Home Assistant's is made anew per platform
    return (
        not isinstance(value, type) and hasattr(value, "key") and hasattr(value, "translation_key")
    )


@pytest.mark.parametrize("platform", ["binary_sensor", "button", "number", "sensor", "switch"])
def test_every_entity_translation_key_is_in_strings_json(platform: str) -> None:
    """The descriptions' translation keys, also those the tables compose (``power_phase``)."""
    module = importlib.import_module(f"custom_components.meter_hub.{platform}")
    descriptions: list[EntityDescription] = []
    for value in vars(module).values():
        items = value.values() if isinstance(value, dict) else value
        if _is_description(items):
            items = [items]
        if isinstance(items, list | tuple | type({}.values())):
            descriptions += [item for item in items if _is_description(item)]
    assert descriptions
    offered = load(COMPONENT / "strings.json")["entity"].get(platform, {})
    assert (
        sorted(
            {d.translation_key for d in descriptions if isinstance(d.translation_key, str)}
            - offered.keys()
        )
        == []
    )
