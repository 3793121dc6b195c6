"""Every language speaks all of en.json: the same keys, the same placeholders, no empty string.

en.json is the reference: a language that misses one of its keys, has a key it does not have, or
changes a placeholder of a string fails here, so a change that adds an English string must add it
in every language too (README: "Adding a language").
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.generated.languages import LANGUAGES as HA_LANGUAGES
from homeassistant.helpers import device_registry as dr, entity_registry as er
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
