"""Home Assistant for ``scripts/develop``, trusting the simulator's CA besides HomeWizard's.

Usage: python scripts/hass_trusting_simulator.py READY_FILE [hass arguments...]

The simulator's HomeWizard API v2 devices carry certificates of a CA the simulator makes at start
(its file is ``homewizard_v2.ca_file`` of the simulator's ready file). Meter Hub trusts the
HomeWizard CA only and has no setting to change that; this launcher, which only
``scripts/develop`` (the demo, the browser test) runs, adds the simulator's CA to the contexts
Meter Hub builds (``create_ssl_context`` of ``api/homewizard/tls.py``, the seam the tests patch too),
then starts Home Assistant as ``hass`` does. Real devices are verified against HomeWizard's CA
as always.
"""

from __future__ import annotations

import json
from pathlib import Path
import ssl
import sys


def _trust_simulator(ca_file: str) -> None:
    from custom_components.meter_hub.api.homewizard import tls  # noqa: PLC0415

    vendor_context = tls.create_ssl_context

    def create_ssl_context(cafile: Path = tls.CA_CERT) -> ssl.SSLContext:
        context = vendor_context(cafile)
        context.load_verify_locations(ca_file)
        return context

    tls.create_ssl_context = create_ssl_context


def main() -> int:
    """Trust the CA of the simulator that wrote ``READY_FILE``, then run Home Assistant."""
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    ready = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    _trust_simulator(ready["homewizard_v2"]["ca_file"])
    from homeassistant.__main__ import main as hass  # noqa: PLC0415

    sys.argv = ["hass", *sys.argv[2:]]
    return hass()


if __name__ == "__main__":
    sys.exit(main())
