"""A fake IAMMETER cloud on 127.0.0.1, for tests, the demo and benchmarks.

It serves the documented ``/api/v1`` endpoints for accounts of fake meters whose values are a
function of the clock, which the test moves: power swings over the day without changing sign,
counters are the integral of power (so they only increase), and ``gmtTime`` is the meter's last
upload, once a minute. Past the vendor's documented limits (rolling windows, the strictest
reading of "hourly" and "daily") it answers "nothing": HTTP 200 with an empty body. ``calls``
records every request. Run ``python -m simulator.iammeter`` to serve the ready-made accounts
with the real clock.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
import itertools
import logging
import math
import secrets
from typing import Any, Final

from aiohttp import web

from .hostile import Responder

_LOGGER = logging.getLogger(__name__)

LISTEN_HOST: Final = "127.0.0.1"
EPOCH: Final = datetime(2024, 1, 1, tzinfo=UTC)
"""The counters of every fake meter hold their configured start values at this time."""
DEFAULT_START: Final = datetime(2024, 2, 22, 3, 46, 30, tzinfo=UTC)
"""Start of ``ManualClock``: the time of the vendor document's metersdata example."""
MAX_HISTORY_POINTS: Final = 2000
_HOUR: Final = timedelta(hours=1)
_DAY: Final = timedelta(days=1)

VENDOR_LIMITS: Final[Mapping[str, tuple[tuple[int, timedelta], ...]]] = {
    "login": ((5, _HOUR), (30, _DAY)),  # per client IP
    "metersdata": ((1, timedelta(minutes=5)),),  # per account
    "meterdata": ((12, _HOUR),),  # per SN, meterdata and meterdata2 together
    "powerAnalysis": ((5, _DAY),),  # per SN
    "offlineAnalysis": ((5, _DAY),),  # per SN
}
_ENERGY_HISTORY: Final = {"hour": (_HOUR, 168), "day": (_DAY, 90)}  # step, most rows
# Field order of a row by length: basic (meterdata), advanced (meterdata2), and the meters' own.
_LAYOUTS: Final = {
    5: ("V", "I", "P", "imp", "exp"),
    6: ("V", "I", "P", "PF", "imp", "exp"),
    7: ("V", "I", "P", "imp", "exp", "Hz", "PF"),
}
# The power swing: (relative amplitude, period in seconds); the amplitudes add up to less than 1.
_WAVES: Final = ((0.3, 86_400.0), (0.1, 700.0))

type _Fields = dict[str, float]
type _Row = list[float | None]


def _swing(seconds: float) -> float:
    """Power relative to a phase's base power, ``seconds`` after ``EPOCH`` (always > 0)."""
    return 1 + sum(a * math.sin(2 * math.pi * seconds / p) for a, p in _WAVES)


def _swing_integral(seconds: float) -> float:
    """The integral of ``_swing`` from ``EPOCH`` (increasing, as ``_swing`` is positive)."""
    waves = sum(
        a * p / (2 * math.pi) * (1 - math.cos(2 * math.pi * seconds / p)) for a, p in _WAVES
    )
    return seconds + waves


def _counters(at_epoch: tuple[float, float], base_w: float, seconds: float) -> tuple[float, float]:
    """Import and export kWh, ``seconds`` after ``EPOCH``, of a flow of mean power ``base_w``.

    The power never changes sign, so one counter grows and the other stays.
    """
    counted = abs(base_w) * _swing_integral(seconds) / 3_600_000
    imported, exported = at_epoch
    if base_w > 0:
        imported += counted
    else:
        exported += counted
    return round(imported, 3), round(exported, 3)


def _wave(seconds: float, period: float, shift: float = 0.0) -> float:
    return math.sin(2 * math.pi * seconds / period + shift)


def vendor_time(at: datetime) -> str:
    """Format a time as the vendor does: ``2024/2/22 3:46:20``."""
    return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute:02}:{at.second:02}"


class ManualClock:
    """A clock the test moves: pass it as ``clock`` and call ``advance``."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        """Start at ``start`` (aware)."""
        self.now = start

    def __call__(self) -> datetime:
        """The current time."""
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Let ``delta`` pass."""
        self.now += delta


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase: mean power (negative = export) and its counters at ``EPOCH``."""

    base_w: float
    import_kwh: float
    export_kwh: float


@dataclass(slots=True)
class FakeMeter:
    """A meter: one phase or three (None = a phase that reports nothing)."""

    sn: str
    phases: tuple[Phase | None, ...]
    metersdata_row: int = 7  # values per row in metersdata: 5 or 7
    net: tuple[float, float] | None = None  # net import/export kWh at EPOCH: net metering on
    voltage: float = 230.0
    reports_hz_pf: bool = True  # False: frequency and PF are null (B384789C in the vendor doc)
    upload_second: int = 0  # the meter uploads once a minute, at this second
    offline: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    never_uploaded: bool = False  # in the account but never uploaded: values and gmtTime null

    def last_upload(self, now: datetime) -> datetime:
        """The time of the last upload at or before ``now`` (offline periods skipped)."""
        at = self._upload_before(now)
        while (gap := self._gap_at(at)) is not None:
            at = self._upload_before(gap[0] - timedelta(seconds=1))
        return at

    def uploads(
        self, start: datetime, end: datetime, interval: timedelta, now: datetime
    ) -> list[datetime]:
        """The first upload of each ``interval`` from ``start`` to ``end``, up to ``now``."""
        found: list[datetime] = []
        begin = start
        while begin < min(end, now) and len(found) < MAX_HISTORY_POINTS:
            at = begin + timedelta(seconds=(self.upload_second - begin.second) % 60)
            if at < min(begin + interval, end) and at <= now and self._gap_at(at) is None:
                found.append(at)
            begin += interval
        return found

    def values(self, at: datetime, length: int, *, flat_single: bool = False) -> list[Any]:
        """The ``values`` array at ``at`` with rows of ``length`` values."""
        rows = [self._layout(fields, length) for fields in self._rows(at)]
        return rows[0] if flat_single and len(rows) == 1 else rows

    def total_power(self, at: datetime) -> float:
        """Sum of the phases' power at ``at``."""
        return sum(fields["P"] for fields in self._phase_fields(at) if fields is not None)

    def energy(self, at: datetime) -> tuple[float, float]:
        """Import and export kWh of the whole meter at ``at`` (the net counters with NEM)."""
        rows = self._rows(at)
        net = rows[-1] if self.net is not None else None
        parts = [net] if net is not None else [row for row in rows if row is not None]
        return sum(row["imp"] for row in parts), sum(row["exp"] for row in parts)

    def _upload_before(self, at: datetime) -> datetime:
        at = at.replace(microsecond=0)
        return at - timedelta(seconds=(at.second - self.upload_second) % 60)

    def _gap_at(self, at: datetime) -> tuple[datetime, datetime | None] | None:
        return next((g for g in self.offline if g[0] <= at and (g[1] is None or at < g[1])), None)

    def _rows(self, at: datetime) -> list[_Fields | None]:
        phases = self._phase_fields(at)
        if self.net is None:
            return phases
        present = [fields for fields in phases if fields is not None]
        base = sum(phase.base_w for phase in self.phases if phase is not None)
        imported, exported = _counters(self.net, base, (at - EPOCH).total_seconds())
        net = {
            "V": round(sum(f["V"] for f in present) / len(present), 1),
            "I": 0.0,
            "P": round(sum(f["P"] for f in present), 1),
            "imp": imported,
            "exp": exported,
            "Hz": present[0]["Hz"],
            "PF": round(sum(f["PF"] for f in present) / len(present), 2),
        }
        return [*phases, net]

    def _phase_fields(self, at: datetime) -> list[_Fields | None]:
        seconds = (at - EPOCH).total_seconds()
        swing = _swing(seconds)
        rows: list[_Fields | None] = []
        for n, phase in enumerate(self.phases):
            if phase is None:
                rows.append(None)
                continue
            power = phase.base_w * swing
            volts = self.voltage + 1.5 * _wave(seconds, 1800, n)
            factor = 0.92 + 0.05 * _wave(seconds, 3600, n)
            imported, exported = _counters(
                (phase.import_kwh, phase.export_kwh), phase.base_w, seconds
            )
            rows.append(
                {
                    "V": round(volts, 1),
                    "I": round(abs(power) / volts / factor, 2),
                    "P": round(power, 1),
                    "PF": round(factor, 2),
                    "imp": imported,
                    "exp": exported,
                    "Hz": round(50 + 0.02 * _wave(seconds, 600), 2),
                }
            )
        return rows

    def _layout(self, fields: _Fields | None, length: int) -> _Row:
        hidden = () if self.reports_hz_pf else ("Hz", "PF")
        names = _LAYOUTS[length]
        if fields is None:
            return [None] * len(names)
        return [None if name in hidden else fields[name] for name in names]


@dataclass(frozen=True, slots=True)
class FakePlace:
    """A place for energyhistory: its grid meter and, optionally, the solar meter."""

    place_id: int
    grid_sn: str
    solar_sn: str | None = None


@dataclass(slots=True)
class FakeAccount:
    """An account; ``utc_offset`` is its local time zone (localTime, rtcTime, date ranges)."""

    username: str
    password: str
    account_id: int
    meters: list[FakeMeter]
    places: list[FakePlace] = field(default_factory=list)
    utc_offset: timedelta = timedelta(hours=8)

    def meter(self, sn: str) -> FakeMeter:
        """The meter ``sn`` of this account (``_Refused`` for others)."""
        found = next((meter for meter in self.meters if meter.sn == sn), None)
        if found is None:
            raise _Refused("Invalid SN.")
        return found

    def midnight(self, day: date) -> datetime:
        """Local midnight starting ``day``, in UTC."""
        return datetime.combine(day, time(), tzinfo=UTC) - self.utc_offset


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One request: when, which endpoint (route name), the limit key, and whether refused."""

    at: datetime
    endpoint: str
    key: str
    over_limit: bool


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected answer: ``status`` and raw ``body`` after hanging ``hang_s`` seconds."""

    status: int = 200
    body: bytes = b""
    hang_s: float = 0.0
    endpoint: str | None = None  # a route name; None = any
    headers: Mapping[str, str] = field(default_factory=dict)
    respond: Responder | None = None  # a hostile answer (simulator.hostile) instead


class _Refused(Exception):
    """Answer ``successful: false`` with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _OverLimit(Exception):
    """Answer nothing."""


VENDOR_EXAMPLE_LOGIN: Final = ("vendor-example", "vendor-example-password")
DEMO_LOGIN: Final = ("demo", "demo-password")


def vendor_example_account() -> FakeAccount:
    """The five meters of the vendor document's metersdata example, with their SNs and shapes."""
    return FakeAccount(
        *VENDOR_EXAMPLE_LOGIN,
        account_id=2025,
        meters=[
            FakeMeter(
                "DA2BED94",
                (Phase(225, 14761.03, 0),),
                metersdata_row=5,
                voltage=223.71,
                upload_second=20,
            ),
            FakeMeter(
                "B384789C",
                (Phase(3356, 21228, 0), Phase(-2747, 8988.48, 18489.44), None),
                net=(8988.48, 18489.44),
                voltage=248.9,
                reports_hz_pf=False,
                upload_second=15,
            ),
            FakeMeter(
                "674B1E5D",
                (
                    Phase(377, 5345.985, 20.565),
                    Phase(377, 5367.715, 0.033),
                    Phase(377, 5369.532, 0.033),
                ),
                metersdata_row=5,
                voltage=220.4,
                upload_second=50,
            ),
            FakeMeter(
                "59C9AB8D",
                (Phase(1604, 46055.7, 0), Phase(-910, 15726.73, 8956.56), None),
                net=(15726.73, 8956.56),
                voltage=245.3,
                reports_hz_pf=False,
                upload_second=15,
            ),
            FakeMeter(
                "3FE34ABE",
                (
                    Phase(3650.1, 2704.35, 0),
                    Phase(-2650.1, 1411.31, 1722.35),
                    Phase(1000, 1946.03, 0),
                ),
                upload_second=1,
            ),
        ],
        places=[FakePlace(1360, "674B1E5D"), FakePlace(2393, "3FE34ABE", solar_sn="DA2BED94")],
    )


def demo_account() -> FakeAccount:
    """One meter of each shape: single-phase 5 and 7 values, three-phase, net metering."""
    return FakeAccount(
        *DEMO_LOGIN,
        account_id=4242,
        meters=[
            FakeMeter(
                "10A5C0DE",
                (Phase(180, 1766.59, 0),),
                metersdata_row=5,
                voltage=230.2,
                upload_second=33,
            ),
            FakeMeter(
                "17A5C0DE", (Phase(-1500, 5724.85, 3120.4),), voltage=233.4, upload_second=22
            ),
            FakeMeter(
                "37A5C0DE",
                (Phase(420, 32354.6, 0), Phase(1986, 30536.41, 17704.72), Phase(250, 13121.56, 0)),
                upload_second=48,
            ),
            FakeMeter(
                "4EA5C0DE",
                (Phase(1068, 468.41, 0), Phase(-2100, 236.58, 290.77), Phase(1213, 258.62, 0)),
                net=(26.329, 25.834),
                upload_second=5,
            ),
        ],
        places=[FakePlace(1, "4EA5C0DE", solar_sn="17A5C0DE")],
        utc_offset=timedelta(hours=1),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ok(data: object) -> web.Response:
    return web.json_response({"data": data, "successful": True, "message": None})


def _date_param(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    try:
        return None if text is None else date.fromisoformat(text)
    except ValueError:
        raise _Refused(f"Invalid {name}.") from None


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    text = request.query.get(name)
    if text is None and default is not None:
        return default
    if text is None or not text.isdecimal():
        raise _Refused(f"Invalid {name}.")
    return int(text)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class FakeIamMeterCloud:
    """The fake cloud. ``accounts`` defaults to the vendor example and the demo account.

    Test handles: ``calls`` (every request), ``issue_token()``, ``expire_tokens()``,
    ``inject_fault()``, and the accounts and meters themselves (add or remove meters, set
    ``FakeMeter.offline`` or ``FakeMeter.never_uploaded``).
    """

    def __init__(
        self,
        clock: Callable[[], datetime] = _utc_now,
        accounts: Iterable[FakeAccount] | None = None,
    ) -> None:
        """Serve ``accounts`` with values and limits driven by ``clock``."""
        self.clock = clock
        self.accounts = list(accounts or (vendor_example_account(), demo_account()))
        self.calls: list[FakeCall] = []
        self._tokens: dict[str, FakeAccount] = {}
        self._counted: dict[tuple[str, str], list[datetime]] = {}
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self._port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        return f"http://{LISTEN_HOST}:{self._port}"

    def account(self, username: str) -> FakeAccount:
        """The account of ``username``."""
        return next(account for account in self.accounts if account.username == username)

    def issue_token(self, username: str) -> str:
        """A valid token of ``username``'s account without a login call (as read in the web app)."""
        token = secrets.token_hex(16)
        self._tokens[token] = self.account(username)
        return token

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid ("Invalid token.")."""
        self._tokens.clear()

    def inject_fault(
        self,
        count: int = 1,
        *,
        status: int = 200,
        body: bytes = b"",
        hang_s: float = 0.0,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        respond: Responder | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``endpoint``, or any) with this instead."""
        fault = Fault(status, body, hang_s, endpoint, dict(headers or {}), respond)
        self._faults.extend([fault] * count)

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0 picks a free one) and return the port."""
        app = web.Application(middlewares=[self._middleware])
        site = "/api/v1/site"
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("login", "/api/v1/user/login", self._login),
            ("metersdata", f"{site}/metersdata", self._metersdata),
            ("meterdata", f"{site}/meterdata/{{sn}}", self._meterdata),
            ("meterdata2", f"{site}/meterdata2/{{sn}}", self._meterdata),
            ("meterdatalist", f"{site}/meterdatalist/{{sn}}", self._meterdatalist),
            ("meterdatalist2", f"{site}/meterdatalist2/{{sn}}", self._meterdatalist),
            ("powerAnalysis", f"{site}/powerAnalysis", self._power_analysis),
            ("offlineAnalysis", f"{site}/offlineAnalysis", self._offline_analysis),
            ("energyhistory", f"{site}/energyhistory/{{place_id}}", self._energy_history),
        ]
        for name, path, handler in routes:
            app.router.add_route("POST" if name == "login" else "GET", path, handler, name=name)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LISTEN_HOST, port).start()
        self._port = self._runner.addresses[0][1]
        self._release = asyncio.Event()
        return self._port

    async def stop(self) -> None:
        """Release hanging requests and stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        at = self.clock()
        endpoint = request.match_info.route.name or request.path
        try:
            fault = next((f for f in self._faults if f.endpoint in (None, endpoint)), None)
            if fault is not None:
                self._faults.remove(fault)
                if fault.hang_s:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(fault.hang_s):
                            await self._release.wait()
                if fault.respond is not None:
                    return await fault.respond(request, self._release)
                return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
            try:
                return await handler(request)
            except _Refused as refused:
                body = {"data": None, "successful": False, "message": refused.message}
                return web.json_response(body)
            except _OverLimit:
                return web.Response(status=200)
        finally:
            key, over = request.get("key", ""), request.get("over_limit", False)
            self.calls.append(FakeCall(at, endpoint, key, over))

    def _admit(self, request: web.Request, kind: str, key: str) -> None:
        """Count the call against the vendor limits of ``kind``, or answer nothing."""
        request["key"] = key
        now = self.clock()
        times = self._counted.setdefault((kind, key), [])
        day_ago = now - _DAY
        times[:] = [at for at in times if at > day_ago]
        over = False
        for n, period in VENDOR_LIMITS[kind]:
            since = now - period
            over = over or sum(at > since for at in times) >= n
        request["over_limit"] = over
        if over:
            raise _OverLimit
        times.append(now)

    def _account(self, request: web.Request) -> FakeAccount:
        query = request.query
        token = query.get("token") or query.get("Token") or request.headers.get("token") or ""
        account = self._tokens.get(token)
        if account is None:
            raise _Refused("Invalid token.")
        return account

    def _analysis_range(self, request: web.Request, account: FakeAccount) -> tuple[date, date]:
        """startTime/endTime; neither = the last 7 days, only startTime = that day."""
        start, end = _date_param(request, "startTime"), _date_param(request, "endTime")
        today = (self.clock() + account.utc_offset).date()
        if start is None:
            return (today - 7 * _DAY, today - _DAY) if end is None else (end - 6 * _DAY, end)
        return start, end or start

    # --- endpoints --------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        self._admit(request, "login", request.remote or "")
        try:
            body = await request.json()
        except ValueError:
            body = None
        credentials = (body.get("userName"), body.get("password")) if isinstance(body, dict) else ()
        account = next((a for a in self.accounts if (a.username, a.password) == credentials), None)
        if account is None:
            raise _Refused("Invalid username or password")
        token = secrets.token_hex(16)
        self._tokens[token] = account
        return _ok(
            {"id": account.account_id, "token": token, "refreshToken": secrets.token_hex(16)}
        )

    async def _metersdata(self, request: web.Request) -> web.Response:
        account = self._account(request)
        self._admit(request, "metersdata", str(account.account_id))
        now = self.clock()
        entries = []
        for meter in account.meters:
            if meter.never_uploaded:
                entries.append({"sn": meter.sn, "values": None, "gmtTime": None})
                continue
            at = meter.last_upload(now)
            values = meter.values(at, meter.metersdata_row, flat_single=True)
            entries.append({"sn": meter.sn, "values": values, "gmtTime": vendor_time(at)})
        return _ok(entries)

    async def _meterdata(self, request: web.Request) -> web.Response:
        account = self._account(request)
        meter = account.meter(request.match_info["sn"])
        self._admit(request, "meterdata", meter.sn)
        at = meter.last_upload(self.clock())
        length = 6 if request.match_info.route.name == "meterdata2" else 5
        return _ok(
            {
                "values": meter.values(at, length),
                "localTime": vendor_time(at + account.utc_offset),
                "gmtTime": vendor_time(at),
            }
        )

    async def _meterdatalist(self, request: web.Request) -> web.Response:
        account = self._account(request)
        meter = account.meter(request.match_info["sn"])
        request["key"] = meter.sn
        interval = _int_param(request, "interval")
        start, end = _date_param(request, "startTime"), _date_param(request, "endTime")
        if interval < 60 or start is None or end is None:
            raise _Refused("Invalid parameter.")
        begin, stop = account.midnight(start), account.midnight(end + _DAY)
        uploads = meter.uploads(begin, stop, timedelta(seconds=interval), self.clock())
        local = account.utc_offset
        if request.match_info.route.name == "meterdatalist2":
            return _ok(
                [
                    {
                        "rtcTime": vendor_time(at + local),
                        "gmtTime": vendor_time(at),
                        "values": meter.values(at, 6),
                    }
                    for at in uploads
                ]
            )
        # Flat rows: the numbers of every row, then the local time and the UTC time (the order
        # of the vendor's examples).
        return _ok(
            [
                [*itertools.chain(*meter.values(at, 5)), vendor_time(at + local), vendor_time(at)]
                for at in uploads
            ]
        )

    async def _power_analysis(self, request: web.Request) -> web.Response:
        account = self._account(request)
        meter = account.meter(request.query.get("sn", ""))
        self._admit(request, "powerAnalysis", meter.sn)
        start, end = self._analysis_range(request, account)
        uploads = meter.uploads(
            account.midnight(start),
            account.midnight(end + _DAY),
            timedelta(minutes=5),
            self.clock(),
        )
        powers = [meter.total_power(at) for at in uploads]
        daytime = [
            meter.total_power(at) for at in uploads if 8 <= (at + account.utc_offset).hour < 20
        ]
        return _ok(
            {
                "startTime": start.isoformat(),
                "endTime": end.isoformat(),
                "average": _round(sum(powers) / len(powers) if powers else None),
                "averageDaytime": _round(sum(daytime) / len(daytime) if daytime else None),
                "minimum": _round(min(powers, default=None)),
                "maximum": _round(max(powers, default=None)),
            }
        )

    async def _offline_analysis(self, request: web.Request) -> web.Response:
        account = self._account(request)
        meter = account.meter(request.query.get("sn", ""))
        self._admit(request, "offlineAnalysis", meter.sn)
        start, end = self._analysis_range(request, account)
        interval = _int_param(request, "interval", default=5)
        begin, stop, now = account.midnight(start), account.midnight(end + _DAY), self.clock()
        gaps = [
            (max(gap_start, begin), min(gap_end or now, stop))
            for gap_start, gap_end in meter.offline
            if gap_start < stop and (gap_end or now) > begin
        ]
        minutes = [(gap_end - gap_start) / timedelta(minutes=1) for gap_start, gap_end in gaps]
        return _ok(
            {
                "startTime": start.isoformat(),
                "endTime": end.isoformat(),
                "offlineCount": round(sum(minutes)),
                "totalCount": round((stop - begin) / timedelta(minutes=1)),
                "list": [
                    {
                        "startTime": vendor_time(gap_start + account.utc_offset),
                        "endTime": vendor_time(gap_end + account.utc_offset),
                        "duration": round(length),
                    }
                    for (gap_start, gap_end), length in zip(gaps, minutes, strict=True)
                    if length > interval
                ],
            }
        )

    async def _energy_history(self, request: web.Request) -> web.Response:
        account = self._account(request)
        request["key"] = place_id = request.match_info["place_id"]
        place = next((p for p in account.places if str(p.place_id) == place_id), None)
        start, end = _date_param(request, "startTime"), _date_param(request, "endTime")
        group = _ENERGY_HISTORY.get(request.query.get("groupby", ""))
        if place is None or start is None or end is None or group is None:
            raise _Refused("Invalid parameter.")
        step, most = group
        grid = account.meter(place.grid_sn)
        solar = account.meter(place.solar_sn) if place.solar_sn else None
        now, begin, stop = self.clock(), account.midnight(start), account.midnight(end)
        rows: list[dict[str, object]] = []
        while begin < min(stop, now) and len(rows) < most:
            until = min(begin + step, now)
            (imp0, exp0), (imp1, exp1) = grid.energy(begin), grid.energy(until)
            made = sum(solar.energy(until)) - sum(solar.energy(begin)) if solar else 0.0
            rows.append(
                {
                    "time": vendor_time(begin + account.utc_offset),
                    "yield": round(made, 2),
                    "fromGrid": round(imp1 - imp0, 2),
                    "toGrid": round(exp1 - exp0, 2),
                    "specialLoad": 0,
                    "selfUse": round(max(0.0, made - (exp1 - exp0)), 2),
                }
            )
            begin += step
        return _ok(rows)


async def _serve(port: int) -> None:
    cloud = FakeIamMeterCloud()
    await cloud.start(port)
    _LOGGER.info("Fake IAMMETER cloud at %s", cloud.url)
    for account in cloud.accounts:
        _LOGGER.info("  user %r, password %r", account.username, account.password)
    try:
        await asyncio.Event().wait()
    finally:
        await cloud.stop()


def main() -> None:
    """Serve the fake cloud with the real clock until interrupted."""
    parser = argparse.ArgumentParser(description="Fake IAMMETER cloud on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
