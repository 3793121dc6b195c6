"""Secrets (issue 7): the password, tokens and refresh tokens of an IAMMETER account never leak,
and TLS certificates are always verified.

One run with every logger at DEBUG goes through setup by the config flow, polling, failures
(HTTP errors, broken bodies, a refused connection, a hanging server, a refusal that echoes the
token, a login refusal that echoes the password), a password change with its reauth flow and
repair issue, and the diagnostics download. Then every log record (message, arguments,
exception), every exception raised on the way (with its chain), the diagnostics, the repair
issues, the flows' forms and every entity's attributes are searched for each secret the fake
cloud ever handed out.
"""

from __future__ import annotations

import ast
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
import http.server
import ipaddress
import json
import logging
from pathlib import Path
import ssl
import threading
import traceback
from typing import Any, ClassVar

# Imported before a test freezes the clock: the diagnostics download imports it, and with the
# clock frozen, mashumaro on Home Assistant 2025.4 cannot compile its dataclasses.
import aiohasupervisor  # noqa: F401
import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from pytest_homeassistant_custom_component.common import MockUser, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.api import iammeter
from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN
from custom_components.meter_hub.const import (
    CLOUD_SCAN_INTERVAL,
    CONF_REFRESH_TOKEN,
    CONF_SERVER,
    CONF_TOKEN,
    DOMAIN,
)
import simulator.iammeter
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud

from .fault_records import CaseRecord, LogWatch, fault_record, record_text

__all__ = ["fault_record"]  # the fixture

POLL = CLOUD_SCAN_INTERVAL + POLL_MARGIN
INTEGRATION = Path(__file__).parents[1] / "custom_components" / "meter_hub"
NEW_PASSWORD = "n3w-Pa55word-4711"


class _TokenRecorder:
    """Stands in for the ``secrets`` module of the fake cloud: every token it makes is kept."""

    def __init__(self) -> None:
        import secrets  # noqa: PLC0415

        self._secrets = secrets
        self.made: list[str] = []

    def token_hex(self, nbytes: int | None = None) -> str:
        token = self._secrets.token_hex(nbytes)
        self.made.append(token)
        return token


class _Spy:
    """Every exception the IAMMETER client raised, and every request aiohttp was asked for."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.requests: list[tuple[aiohttp.ClientSession, str, dict[str, Any]]] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    found = _Spy()
    call = iammeter.IamMeterClient._call
    request = aiohttp.ClientSession._request

    async def spying_call(self: iammeter.IamMeterClient, *args: Any, **kwargs: Any) -> object:
        try:
            return await call(self, *args, **kwargs)
        except Exception as err:
            found.errors.append(err)
            raise

    def spying_request(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        found.requests.append((self, str(url), kwargs))
        return request(self, method, url, **kwargs)

    monkeypatch.setattr(iammeter.IamMeterClient, "_call", spying_call)
    monkeypatch.setattr(aiohttp.ClientSession, "_request", spying_request)
    return found


def _exception_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)) + repr(err) + repr(getattr(err, "args", ()))


def _leaks(texts: dict[str, str], secrets: set[str]) -> list[str]:
    return [
        f"{secret[:3]}… in {where}: {text[:200]!r}"
        for where, text in texts.items()
        for secret in secrets
        if secret in text
    ]


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta) -> None:
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_no_secret_reaches_logs_errors_diagnostics_repairs_or_attributes(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,  # before hass_client: its access token is issued at the fake's time
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    hass_admin_user: MockUser,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    spy: _Spy,
    fault_record: CaseRecord,
) -> None:
    logs = LogWatch(caplog)
    caplog.set_level(logging.DEBUG)
    tokens = _TokenRecorder()
    monkeypatch.setattr(simulator.iammeter, "secrets", tokens)
    username, password = VENDOR_EXAMPLE_LOGIN
    exceptions: list[BaseException] = []
    forms: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []

    async def poll(count: int = 1) -> None:
        for _ in range(count):
            await _tick(hass, freezer, POLL)
            if (err := entry.runtime_data.coordinator.last_exception) is not None:
                exceptions.append(err)

    # setup through the config flow: the password is typed in, the token comes from a login
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "cloud"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_USERNAME: username, CONF_PASSWORD: password, CONF_SERVER: cloud.url},
    )
    assert result["step_id"] == "insecure_server"  # the fake cloud is plain http
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    forms.append({k: v for k, v in result.items() if k not in ("data", "result")})
    entry = result["result"]
    await hass.async_block_till_done(wait_background_tasks=True)
    entry_tokens = {entry.data[CONF_TOKEN], entry.data[CONF_REFRESH_TOKEN]}
    await poll(2)

    # failures
    cloud.inject_fault(endpoint="metersdata", status=500, body=b"<html>500</html>")
    await poll()
    cloud.inject_fault(endpoint="metersdata", body=b'{"data": [')
    await poll()
    port = int(cloud.url.rpartition(":")[2])
    await cloud.stop()
    await poll(4)  # long enough for the reading to go stale: the failure is logged
    await cloud.start(port)
    await poll()
    coordinator = entry.runtime_data.coordinator
    coordinator.client._timeout = 2
    cloud.inject_fault(endpoint="metersdata", hang_s=5)
    freezer.tick(POLL)
    async_fire_time_changed(hass)
    for _ in range(200):
        await hass.async_block_till_done()
    await _tick(hass, freezer, timedelta(seconds=3))
    await poll()
    # a refusal that names the token it refuses: logging in again is the answer
    echo = {"data": None, "successful": False, "message": f"Invalid token {entry.data[CONF_TOKEN]}"}
    cloud.inject_fault(endpoint="metersdata", body=json.dumps(echo).encode())
    await poll(2)
    entry_tokens |= {entry.data[CONF_TOKEN], entry.data[CONF_REFRESH_TOKEN]}
    assert len([call for call in cloud.calls if call.endpoint == "login"]) == 2

    # the password changes: the entry asks for it (reauth flow, repair issue)
    cloud.account(username).password = NEW_PASSWORD
    cloud.expire_tokens()
    await poll(2)
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_REAUTH
    issues.extend(asdict(issue) for issue in ir.async_get(hass).issues.values())
    assert any(entry.entry_id in issue["issue_id"] for issue in issues), issues
    # a login refusal that repeats the password the user typed
    wrong = "typo-Pa55word-0815"
    echo = {"data": None, "successful": False, "message": f"Wrong password {wrong} for {username}"}
    cloud.inject_fault(endpoint="login", body=json.dumps(echo).encode())
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PASSWORD: wrong})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    forms.append(dict(result))
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_PASSWORD: NEW_PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    forms.append(dict(result))
    await hass.async_block_till_done(wait_background_tasks=True)
    entry_tokens |= {entry.data[CONF_TOKEN], entry.data[CONF_REFRESH_TOKEN]}
    await poll(2)
    assert entry.runtime_data.coordinator.last_update_success
    issues.extend(asdict(issue) for issue in ir.async_get(hass).issues.values())

    # the download as a user makes it, with an access token of now (hours have passed)
    refresh_token = next(iter(hass_admin_user.refresh_tokens.values()))
    access_token = hass.auth.async_create_access_token(refresh_token)
    diagnostics = await get_diagnostics_for_config_entry(
        hass, lambda: hass_client(access_token), entry
    )

    secrets = {password, NEW_PASSWORD, wrong, *tokens.made, *entry_tokens} - {None, ""}
    assert len(tokens.made) >= 6  # tokens and refresh tokens of three logins
    texts: dict[str, str] = {
        f"log record {n} ({record.name})": record_text(record)
        for n, record in enumerate(logs.records)
    }
    texts["log"] = caplog.text
    texts |= {f"exception {n}": _exception_text(err) for n, err in enumerate(spy.errors)}
    texts |= {f"update error {n}": _exception_text(err) for n, err in enumerate(exceptions)}
    texts["diagnostics"] = json.dumps(diagnostics, default=str)
    texts["repair issues"] = json.dumps(issues, default=str)
    texts["flow forms"] = json.dumps(forms, default=str)
    texts["entry title and reason"] = f"{entry.title} {entry.reason}"
    texts |= {
        f"state of {state.entity_id}": json.dumps(state.as_dict(), default=str)
        for state in hass.states.async_all()
    }
    leaks = _leaks(texts, secrets)
    fault_record.checks = len(texts)
    fault_record.secrets_found = len(leaks)
    fault_record.tracebacks = len(logs.tracebacks())
    fault_record.notes = leaks
    fault_record.completed = True
    # the searches look for the real secrets, and saw the failures
    assert entry.data[CONF_PASSWORD] == NEW_PASSWORD
    assert {entry.data[CONF_TOKEN], entry.data[CONF_REFRESH_TOKEN]} <= set(tokens.made)
    assert any(isinstance(err, iammeter.CannotConnect) for err in spy.errors)
    assert any(isinstance(err, iammeter.TokenRejected) for err in spy.errors)
    assert any(isinstance(err, iammeter.InvalidAuth) for err in spy.errors)
    assert "Error fetching" in caplog.text
    assert leaks == []


# --- TLS ----------------------------------------------------------------------------------------


def _unverified_tls(tree: ast.AST) -> list[str]:
    """Places in the code that switch certificate checks off."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.keyword)
            and node.arg in ("ssl", "verify_ssl", "verify")
            and isinstance(node.value, ast.Constant)
            and not node.value.value
        ):
            found.append(f"{node.arg}={node.value.value!r} at line {node.value.lineno}")
        if isinstance(node, ast.Attribute) and node.attr in (
            "CERT_NONE",
            "_create_unverified_context",
            "check_hostname",
        ):
            found.append(f"{node.attr} at line {node.lineno}")
    return found


# The one place that takes any name: the context that reads which device answers at an address
# from its certificate (chain verified against the CA), for a handshake without a request; every
# request then checks that name (api/homewizard/tls.py, read_device_name).
NAME_READER = ("api/homewizard/tls.py", "create_naming_context")


def _outside_name_reader(name: str, tree: ast.AST, problems: list[str]) -> list[str]:
    """``problems`` without the name reader's own line (``check_hostname`` in it, nothing else)."""
    if name != NAME_READER[0]:
        return problems
    (function,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == NAME_READER[1]
    ]
    lines = range(function.lineno, (function.end_lineno or function.lineno) + 1)
    return [
        problem
        for problem in problems
        if not (
            problem.startswith("check_hostname at line ")
            and int(problem.rpartition(" ")[2]) in lines
        )
    ]


def test_the_code_never_switches_certificate_checks_off(fault_record: CaseRecord) -> None:
    files = sorted(INTEGRATION.rglob("*.py"))
    trees = {
        str(path.relative_to(INTEGRATION)): ast.parse(path.read_text(encoding="utf-8"))
        for path in files
    }
    found = {
        name: problems
        for name, tree in trees.items()
        if (problems := _outside_name_reader(name, tree, _unverified_tls(tree)))
    }
    fault_record.checks = len(files)
    fault_record.notes = [f"TLS checks off in {name}: {found[name]}" for name in found]
    fault_record.completed = True
    assert found == {}
    # the scan itself finds what it looks for
    assert _unverified_tls(ast.parse("session.get(url, ssl=False)"))
    assert _unverified_tls(ast.parse("async_get_clientsession(hass, verify_ssl=False)"))


async def test_cloud_calls_use_the_verifying_session(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    spy: _Spy,
    fault_record: CaseRecord,
) -> None:
    """The config flow and the coordinator call through Home Assistant's verifying session and
    never pass anything that would weaken its TLS checks."""
    username, password = VENDOR_EXAMPLE_LOGIN
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "cloud"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_USERNAME: username, CONF_PASSWORD: password, CONF_SERVER: cloud.url},
    )
    assert result["step_id"] == "insecure_server"  # the fake cloud is plain http
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    cloud.expire_tokens()
    for _ in range(2):
        await _tick(hass, freezer, POLL)

    verifying = async_get_clientsession(hass)
    ours = [r for r in spy.requests if r[1].startswith(cloud.url)]
    fault_record.checks = len(ours)
    fault_record.completed = True
    assert {url.rpartition("/")[2].partition("?")[0] for _, url, _ in ours} >= {
        "login",
        "metersdata",
    }
    for session, url, kwargs in ours:
        assert session is verifying, url
        assert kwargs.get("ssl", True) not in (False, None), url
        assert kwargs.get("verify_ssl", True), url
    context = verifying.connector._ssl  # type: ignore[union-attr]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


class _LoginHandler(http.server.BaseHTTPRequestHandler):
    """Answers any sign-in, and remembers that it saw one."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.path)
        body = b'{"data": {"id": 1, "token": "t", "refreshToken": "r"}, "successful": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet."""


async def test_a_server_with_an_unverifiable_certificate_never_sees_the_password(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, fault_record: CaseRecord
) -> None:
    """An HTTPS server whose certificate no authority signed (a man in the middle): the sign-in
    fails with cannot_connect before a single byte of the request reaches it.

    The server runs in a thread of its own: the failed handshakes are its business, not that of
    Home Assistant's event loop.
    """
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    _LoginHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoginHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "cloud"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_USERNAME: "someone",
                CONF_PASSWORD: "secret-Pa55word",
                CONF_SERVER: f"https://127.0.0.1:{server.server_address[1]}",
            },
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    fault_record.checks = 1
    fault_record.secrets_found = len(_LoginHandler.seen)
    fault_record.completed = True
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert _LoginHandler.seen == []
