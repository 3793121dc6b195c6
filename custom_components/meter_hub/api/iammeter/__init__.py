"""The IAMMETER cloud API: the client, the parser of its answers, its models and errors.

The shape python-homewizard-energy uses: ``client`` does the HTTP, ``parser`` turns the
answers' JSON into the ``models``, ``errors`` are what the client raises. What callers need is
exported here.
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
