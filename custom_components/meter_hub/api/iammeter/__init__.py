"""IAMMETER: the cloud API and the meters' local API (``local``).

The shape python-homewizard-energy uses: ``client`` does the HTTP, ``parser`` turns the
answers' JSON into the ``models``, ``errors`` are what the client raises. What callers of the
cloud API need is exported here; the local API's client and its errors are in ``local``, which
reads the same value rows as the cloud (``parser.parse_values``).
"""

from .client import DEFAULT_SERVER, IamMeterClient
from .errors import (
    ApiError,
    CannotConnect,
    IamMeterError,
    InvalidAuth,
    InvalidResponse,
    RateLimited,
    Redirected,
    TokenRejected,
)
from .models import (
    MANUFACTURER,
    MAX_HISTORY_POINTS,
    Credentials,
    EnergyHistoryRow,
    GroupBy,
    HistoryRow,
    MeterReading,
    MeterShape,
    OfflineAnalysis,
    OfflineGap,
    PowerAnalysis,
    max_history_days,
    model_of,
)
from .parser import METER_KEYS, parse_meters_data, parse_values, retry_after_of

__all__ = [
    "DEFAULT_SERVER",
    "MANUFACTURER",
    "MAX_HISTORY_POINTS",
    "METER_KEYS",
    "ApiError",
    "CannotConnect",
    "Credentials",
    "EnergyHistoryRow",
    "GroupBy",
    "HistoryRow",
    "IamMeterClient",
    "IamMeterError",
    "InvalidAuth",
    "InvalidResponse",
    "MeterReading",
    "MeterShape",
    "OfflineAnalysis",
    "OfflineGap",
    "PowerAnalysis",
    "RateLimited",
    "Redirected",
    "TokenRejected",
    "max_history_days",
    "model_of",
    "parse_meters_data",
    "parse_values",
    "retry_after_of",
]
