"""Async client for the IAMMETER cloud API (``/api/v1``).

No Home Assistant imports. The session is injected and TLS verification stays on. The token
goes in the ``token`` header only, never in a URL (the vendor's own clients, its Node-RED node
and WordPress plugin, send it that way; see ../shared/research/iammeter.md, section 2.5). Redirects
are never followed: the password and the token go only to the server the user chose. The
client does not count calls: the caller asks ``budget.CallBudget`` first.

Secrets (token, refresh token, password) never reach an exception message, a repr or a log
line: errors name the API path, never a URL with its query string, and aiohttp's own messages
(which embed the URL) are scrubbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date
import logging
import re
from typing import Final
from urllib.parse import quote

import aiohttp

from custom_components.meter_hub.api.model import vendor_identifier, vendor_text
from custom_components.meter_hub.api.transport import (
    ACCEPT_ENCODING,
    BodyError,
    loggable,
    parse_json,
    read_body,
)

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
    MAX_HISTORY_POINTS,
    Credentials,
    EnergyHistoryRow,
    GroupBy,
    HistoryRow,
    MeterReading,
    OfflineAnalysis,
    PowerAnalysis,
    max_history_days,
)
from .parser import (
    as_dict,
    as_list,
    known_meters_fields,
    parse_energy_row,
    parse_history_row,
    parse_meter_reading,
    parse_meters_data,
    parse_offline_analysis,
    parse_power_analysis,
    retry_after_of,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_SERVER: Final = "https://www.iammeter.com"
ENERGY_HISTORY_MAX_DAYS: Final[Mapping[str, int]] = {"hour": 7, "day": 90}
MAX_BODY: Final = 2 * 1024 * 1024
"""Largest answer read, on the wire and decompressed. The largest real one is a day of
meterdatalist2 at 1 minute of a net-metering meter (2000 rows of 4): 545 KB; metersdata of 100
three-phase meters is 29 KB. 2 MiB leaves a factor of almost 4 and parses in the executor."""

# Longer than any token a server could mean (a JWT fits): the token goes into every header.
MAX_TOKEN_LENGTH: Final = 4096

# Words in a ``successful: false`` message that say the call was refused for its frequency.
_RATE_LIMIT_WORDS: Final = ("too many", "too fast", "too frequent", "rate limit")


class IamMeterClient:
    """One IAMMETER cloud account (or a self-hosted server with the same API)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str = DEFAULT_SERVER,
        *,
        token: str | None = None,
        timeout: float = 20,
    ) -> None:
        """Use ``session`` (never closed here); ``token`` from a former login, if any."""
        self._session = session
        self._server = server.rstrip("/")
        self._token = token
        self._password: str | None = None  # while logging in
        self._timeout = timeout
        self.last_meters_payload: list[dict[str, object]] | None = None
        """The last metersdata answer's ``data``, known fields only (to store, for diagnostics)."""

    async def login(self, username: str, password: str) -> Credentials:
        """Log in (limited to 5/hour and 30/day per IP); the client keeps the new token."""
        body = {"userName": username, "password": password}
        # A refusal may repeat what was sent: the password is scrubbed like the token.
        self._password = password
        try:
            answer = await self._call("POST", "/api/v1/user/login", body=body)
        finally:
            self._password = None
        data = as_dict(answer, "login data")
        # The tokens go into headers, the account id into the entry's unique id: valid text only.
        token = vendor_text(data.get("token"), MAX_TOKEN_LENGTH)
        refresh = vendor_text(data.get("refreshToken"), MAX_TOKEN_LENGTH)
        account = vendor_identifier(data.get("id"))
        if token is None or account is None:
            raise InvalidResponse("login answer has no valid token or account id")
        self._token = token
        return Credentials(account, token, refresh)

    async def meters_data(self) -> dict[str, MeterReading]:
        """The latest upload of every meter of the account (at most once per 5 minutes).

        The answer's ``data`` is kept in ``last_meters_payload`` once it parsed, with only the
        fields this client reads (see ``known_meters_fields``).
        """
        data = await self._call("GET", "/api/v1/site/metersdata")
        readings = parse_meters_data(data)
        self.last_meters_payload = known_meters_fields(data, readings)
        return readings

    async def meter_data(self, sn: str, *, advanced: bool = True) -> MeterReading:
        """The latest upload of one meter; ``advanced`` (meterdata2) adds the power factor."""
        endpoint = "meterdata2" if advanced else "meterdata"
        path = f"/api/v1/site/{endpoint}/{quote(sn, safe='')}"
        data = as_dict(await self._call("GET", path), endpoint)
        return parse_meter_reading(
            sn, data.get("values"), data.get("gmtTime"), data.get("localTime")
        )

    async def meter_data_list(
        self, sn: str, start: date, end: date, interval_s: int, *, advanced: bool = True
    ) -> list[HistoryRow]:
        """History rows from ``start`` to ``end`` (inclusive, the account's local dates).

        Raises ``ValueError`` when the range holds more than ``MAX_HISTORY_POINTS`` rows (see
        ``max_history_days``) or the interval is shorter than the meters' one minute.
        """
        days = (end - start).days + 1
        if interval_s < 60 or not 1 <= days <= max_history_days(interval_s):
            raise ValueError(
                f"{days} days at {interval_s} s is outside 1..{max_history_days(interval_s)} "
                f"days ({MAX_HISTORY_POINTS} points at most, interval at least 60 s)"
            )
        endpoint = "meterdatalist2" if advanced else "meterdatalist"
        params = {"interval": str(interval_s), **_range(start, end)}
        data = await self._call("GET", f"/api/v1/site/{endpoint}/{quote(sn, safe='')}", params)
        rows = (parse_history_row(row) for row in as_list(data, endpoint))
        return [row for row in rows if row is not None]

    async def power_analysis(
        self, sn: str, start: date | None = None, end: date | None = None
    ) -> PowerAnalysis:
        """Power statistics of a range (default: the last 7 days); 5 calls a day per SN."""
        data = await self._call(
            "GET", "/api/v1/site/powerAnalysis", {"sn": sn, **_range(start, end)}
        )
        return parse_power_analysis(as_dict(data, "powerAnalysis"))

    async def offline_analysis(
        self,
        sn: str,
        start: date | None = None,
        end: date | None = None,
        interval_min: int | None = None,
    ) -> OfflineAnalysis:
        """Offline minutes and gaps longer than ``interval_min``; 5 calls a day per SN."""
        params = {"sn": sn, **_range(start, end)}
        if interval_min is not None:
            params["interval"] = str(interval_min)
        data = await self._call("GET", "/api/v1/site/offlineAnalysis", params)
        return parse_offline_analysis(as_dict(data, "offlineAnalysis"))

    async def energy_history(
        self, place_id: int | str, start: date, end: date, groupby: GroupBy
    ) -> list[EnergyHistoryRow]:
        """A place's hourly or daily energy from ``start`` up to ``end`` (exclusive).

        The vendor's examples return 5/5 only for 2024-05-05..2024-05-06, so the end date is
        exclusive. Raises ``ValueError`` beyond 7 days (hour) or 90 days (day).
        """
        days = (end - start).days
        if not 1 <= days <= ENERGY_HISTORY_MAX_DAYS[groupby]:
            raise ValueError(
                f"{days} days by {groupby} is outside 1..{ENERGY_HISTORY_MAX_DAYS[groupby]}"
            )
        path = f"/api/v1/site/energyhistory/{quote(str(place_id), safe='')}"
        data = await self._call("GET", path, {**_range(start, end), "groupby": groupby})
        rows = (parse_energy_row(row) for row in as_list(data, "energyhistory"))
        return [row for row in rows if row is not None]

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        body: Mapping[str, str] | None = None,
    ) -> object:
        """Send one request and return the envelope's ``data``; typed errors otherwise."""
        login = body is not None
        headers = dict(ACCEPT_ENCODING)
        if not login:
            if self._token is None:
                raise TokenRejected(f"{path}: no token, log in first")
            headers["token"] = self._token
        try:
            # the whole call, body and parsing included, within the timeout
            async with asyncio.timeout(self._timeout):
                async with self._session.request(
                    method,
                    self._server + path,
                    params=params,
                    json=body,
                    headers=headers,
                    allow_redirects=False,
                    auto_decompress=False,
                ) as response:
                    status, retry_after = response.status, response.headers.get("Retry-After")
                    if 300 <= status < 400:
                        # Followed, it could carry the password or the token to another host,
                        # or over plain http.
                        raise Redirected(f"{path}: HTTP {status} redirect, not followed") from None
                    raw = await read_body(response, MAX_BODY)
                _LOGGER.debug("%s %s: HTTP %s, %d bytes", method, path, status, len(raw))
                return await self._answer(path, status, retry_after, raw, login=login)
        except TimeoutError:
            raise CannotConnect(f"{path}: no answer within {self._timeout} s") from None
        except BodyError as err:
            raise InvalidResponse(f"{path}: {err}") from None
        except aiohttp.ClientError as err:
            # aiohttp's messages can hold the URL and the server's text: scrub, drop the chain.
            raise CannotConnect(f"{path}: {self._scrub(f'{type(err).__name__}: {err}')}") from None

    async def _answer(
        self, path: str, status: int, retry_after: str | None, raw: bytes, *, login: bool
    ) -> object:
        """The envelope's ``data`` of an answer read whole; typed errors otherwise."""
        self._check_status(path, status, retry_after, raw, login=login)
        try:
            payload = await parse_json(raw)
        except ValueError:
            raise InvalidResponse(f"{path}: HTTP {status}, the body is not JSON") from None
        return self._data(path, status, payload, login=login)

    @staticmethod
    def _check_status(
        path: str, status: int, retry_after: str | None, raw: bytes, *, login: bool
    ) -> None:
        """Raise the error an HTTP status (or an empty answer) stands for."""
        # Rate limit or broken answer? The vendor only says that past a limit "the API will
        # return nothing"; every normal answer, including refusals, carries the JSON envelope.
        # So HTTP 200 with an empty body is the limit (as is a standard 429), a non-empty body
        # that is not the envelope (a proxy's HTML page, cut-off JSON) is a broken answer, and a
        # refusal whose message talks about frequency is the limit too.
        if status == 429 or (status == 200 and not raw.strip()):
            raise RateLimited(
                f"{path}: rate limited (HTTP {status})", retry_after=retry_after_of(retry_after)
            )
        if status in (401, 403):
            raise (InvalidAuth if login else TokenRejected)(f"{path}: HTTP {status}")
        if status >= 500:
            raise CannotConnect(f"{path}: HTTP {status}")

    def _data(self, path: str, status: int, payload: object, *, login: bool) -> object:
        """Check the ``{data, successful, message}`` envelope and return its ``data``."""
        if not isinstance(payload, dict):
            raise InvalidResponse(f"{path}: the answer is not an object")
        message = (
            self._scrub(payload["message"]) if isinstance(payload.get("message"), str) else None
        )
        if payload.get("successful") is False:
            raise self._refusal(path, message, login=login)
        if status != 200 or payload.get("successful") is not True:
            raise InvalidResponse(
                f"{path}: HTTP {status}, not a successful answer", vendor_message=message
            )
        if payload.get("data") is None:
            raise InvalidResponse(f"{path}: the answer has no data", vendor_message=message)
        return payload["data"]

    @staticmethod
    def _refusal(path: str, message: str | None, *, login: bool) -> IamMeterError:
        """The error for ``successful: false``, chosen by what the message talks about."""
        text = (message or "").lower()
        if any(word in text for word in _RATE_LIMIT_WORDS):
            return RateLimited(f"{path}: rate limited", vendor_message=message)
        if login:
            return InvalidAuth(f"{path}: login refused", vendor_message=message)
        if "token" in text:
            return TokenRejected(f"{path}: token rejected", vendor_message=message)
        return ApiError(f"{path}: refused", vendor_message=message)

    def _scrub(self, text: str) -> str:
        """``text`` without query strings, the token and (while logging in) the password.

        Shortened and escaped as any vendor text (``loggable``).
        """
        text = re.sub(r"\?[^\s'\")]*", "?…", text)
        for secret in (self._token, self._password):
            if secret:
                text = text.replace(secret, "…")
        return loggable(text)


def _range(start: date | None, end: date | None) -> dict[str, str]:
    """The ``startTime``/``endTime`` parameters of the dates given."""
    dates = {"startTime": start, "endTime": end}
    return {name: day.isoformat() for name, day in dates.items() if day is not None}
