"""Constants of the Meter Hub integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

from .counter_guard import ResetRule

DOMAIN: Final = "meter_hub"
LOGGER: Final = logging.getLogger(__package__)

# Config entry data
CONF_SOURCE: Final = "source"
SOURCE_CLOUD: Final = "cloud"
SOURCE_LOCAL: Final = "local"
CONF_SERVER: Final = "server"
CONF_ACCOUNT_ID: Final = "account_id"
CONF_TOKEN: Final = "token"  # noqa: S105 - a key name, not a secret
CONF_REFRESH_TOKEN: Final = "refresh_token"  # noqa: S105 - a key name, not a secret
# Entry data that changes while the entry runs (a refreshed token) and needs no reload.
RUNTIME_DATA_KEYS: Final = frozenset({CONF_TOKEN, CONF_REFRESH_TOKEN})
CONF_PRODUCT_TYPE: Final = "product_type"
CONF_SERIAL: Final = "serial"
# HomeWizard: 2 for an entry on the local API v2 (HTTPS, token in CONF_TOKEN); absent for v1.
CONF_API_VERSION: Final = "api_version"
# A local entry's vendor: absent for HomeWizard (every entry before IAMMETER meters could be local).
CONF_VENDOR: Final = "vendor"
VENDOR_IAMMETER: Final = "iammeter"
# IAMMETER: whether the meter sent the net-metering row when its entry was made (its total
# energy counters are then the net row's, else the sums of the phases).
CONF_NET_METERING: Final = "net_metering"
# IAMMETER cloud entry option: the local address (and credentials) of meters of the account, by
# serial: their live values come from there (iammeter_link.py).
CONF_LOCAL_METERS: Final = "local_meters"

# Options
CONF_SCAN_INTERVAL: Final = "scan_interval"
CONF_PLACE_ID: Final = "place_id"
# HomeWizard v2: WebSocket push (default) or polling only, and the least time between two updates
# of the entities from pushed messages (0: every message).
CONF_PUSH: Final = "push"
CONF_PUSH_INTERVAL_MS: Final = "push_interval_ms"

DEFAULT_SERVER: Final = "https://www.iammeter.com"

# HomeWizard: 5 s by default; the user may choose 1-60 s (HomeWizard advises no faster than 500 ms).
LOCAL_SCAN_INTERVAL: Final = timedelta(seconds=5)
LOCAL_SCAN_INTERVAL_RANGE: Final = (1, 60)
# IAMMETER meters on the local network: the vendor says their values refresh about every second,
# and the README says what was measured.
IAMMETER_LOCAL_SCAN_INTERVAL: Final = timedelta(seconds=1)
# A HomeWizard v2 device whose WebSocket dropped keeps its last pushed reading this long while the
# polls that stand in for the socket fail (a reboot takes about 20 s).
PUSH_STALE_AFTER: Final = timedelta(seconds=30)
# IAMMETER cloud: metersdata may be called at most once per 5 minutes; users may only go slower.
CLOUD_SCAN_INTERVAL: Final = timedelta(minutes=5)
CLOUD_SCAN_INTERVAL_RANGE_MIN: Final = (5, 60)
# A failed cloud poll keeps the last reading while it is younger than this.
CLOUD_STALE_AFTER: Final = timedelta(minutes=15)

# A lower counter value is accepted as a meter reset once observed in this many readings over
# this long (only time between two readings that both showed it counts).
LOCAL_COUNTER_RESET: Final = ResetRule(polls=3, seconds=60.0)
# The cloud's readings come 5 minutes apart: three of them, at least 10 minutes of observation.
CLOUD_COUNTER_RESET: Final = ResetRule(polls=3, seconds=600.0)
