"""Find the Home Assistant release that a pytest-homeassistant-custom-component pin stands for.

Usage: python scripts/ha_pins.py PHCC_VERSION DIR

Downloads the two wheels (without dependencies) into DIR, writes Home Assistant's own
package_constraints.txt to DIR/ha_constraints.txt and prints the Home Assistant version.
scripts/test and scripts/develop install with these constraints, as Home Assistant's own CI
does, so that the environment holds the library versions that Home Assistant release was tested
with (and pip has no loose ranges to backtrack through). Run it with the interpreter of the venv
being built, so that pip picks wheels for that Python.
"""

from __future__ import annotations

from email.parser import Parser
from pathlib import Path
import subprocess
import sys
import zipfile


def download(name: str, version: str, directory: Path) -> Path:
    """Download one wheel, without dependencies, and return its path."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    subprocess.run(
        [*pip, "-d", str(directory), f"{name}=={version}"],
        check=True,
        stdout=sys.stderr,
    )
    prefix = f"{name.replace('-', '_')}-{version}-".lower()
    for wheel in directory.glob("*.whl"):
        if wheel.name.lower().startswith(prefix):
            return wheel
    raise SystemExit(f"pip downloaded no wheel for {name}=={version} into {directory}")


def metadata(wheel: Path) -> list[str]:
    """Requires-Dist lines of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return message.get_all("Requires-Dist") or []


def main() -> None:
    phcc, directory = sys.argv[1], Path(sys.argv[2])
    directory.mkdir(parents=True, exist_ok=True)
    phcc_wheel = download("pytest-homeassistant-custom-component", phcc, directory)
    pins = {
        name.strip().lower(): version.split(";")[0].strip()
        for name, _, version in (r.partition("==") for r in metadata(phcc_wheel))
        if version
    }
    ha = pins.get("homeassistant")
    if ha is None:
        raise SystemExit(f"pytest-homeassistant-custom-component {phcc} pins no homeassistant")
    ha_wheel = download("homeassistant", ha, directory)
    with zipfile.ZipFile(ha_wheel) as archive:
        constraints = archive.read("homeassistant/package_constraints.txt").decode()
    (directory / "ha_constraints.txt").write_text(constraints)
    print(ha)


if __name__ == "__main__":
    main()
