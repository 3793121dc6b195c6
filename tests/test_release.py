"""What the Marketplace (Home Assistant 2026.11) and HACS read: hacs.json and the version."""

from __future__ import annotations

import json
from pathlib import Path
import re
import tomllib

ROOT = Path(__file__).parent.parent
# The keys HACS's schema for hacs.json accepts (it refuses any other key).
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
}


def test_manifest_version_is_the_project_version() -> None:
    """The Marketplace requires a version; a release tag, the manifest and pyproject agree."""
    manifest = json.loads((ROOT / "custom_components/meter_hub/manifest.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["version"] == project["version"]


def test_hacs_json_names_the_minimum_the_readme_states() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs.keys() <= HACS_KEYS
    assert hacs["name"] == "Meter Hub"
    series = re.fullmatch(r"(\d{4}\.\d+)\.\d+", hacs["homeassistant"])
    assert series is not None
    readme = (ROOT / "README.md").read_text()
    assert f"Needs Home Assistant {series[1]} or newer" in readme
