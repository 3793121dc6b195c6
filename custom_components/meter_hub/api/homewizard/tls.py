"""TLS of the local API v2: the HomeWizard CA and the name in a device's certificate.

The CA ships with this package (``homewizard-ca-cert.pem``); a device's certificate carries the
name ``appliance/<type>/<serial>``.

Verification is never switched off: a test or the simulator passes its own CA file to
``create_ssl_context``; nothing a user or a device sends can.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
import re
import ssl
from typing import Final

from yarl import URL

from custom_components.meter_hub.api.transport import loggable

from .errors import CannotConnect, NotHomeWizard, UntrustedDevice
from .hosts import normalise_host
from .models import CERTIFICATE_TYPES

CA_CERT: Final = Path(__file__).with_name("homewizard-ca-cert.pem")


# The name in a device certificate: the legacy product type and the serial (12 hex digits).
_DEVICE_NAME: Final = re.compile(r"appliance/[a-z0-9]{1,32}/[0-9a-fA-F]{12}")


def server_hostname(product_type: str, serial: str) -> str:
    """The name in the certificate of device ``serial`` of ``product_type``."""
    certificate_type = CERTIFICATE_TYPES.get(product_type)
    if certificate_type is None:
        raise NotHomeWizard(f"no API v2 for product type {loggable(product_type, 40)}")
    return f"appliance/{certificate_type}/{serial}"


def create_ssl_context(cafile: Path = CA_CERT) -> ssl.SSLContext:
    """A context that trusts only ``cafile``; blocking (reads the file): call it in the executor.

    The device certificates name the device in the common name alone, so that is checked. The
    HomeWizard CA is an X.509 version 1 certificate (no extensions), which the strict checks
    Python enables by default reject; the chain and the name are verified all the same.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.hostname_checks_common_name = True
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def create_naming_context(cafile: Path = CA_CERT) -> ssl.SSLContext:
    """A context that verifies the chain against ``cafile`` and takes any device name.

    Only to learn which device answers at an address (``read_device_name``); no request is ever
    sent with it: every request names the device it expects (``HomeWizardV2Client``).
    """
    context = create_ssl_context(cafile)
    context.check_hostname = False
    return context


_contexts: dict[tuple[Path, bool], ssl.SSLContext] = {}


async def shared_ssl_context(cafile: Path = CA_CERT, *, naming: bool = False) -> ssl.SSLContext:
    """The context of ``create_ssl_context``, built once (off the event loop) per CA file.

    ``naming``: the context of ``create_naming_context`` instead.
    """
    if (context := _contexts.get((cafile, naming))) is None:
        loop = asyncio.get_running_loop()
        create = create_naming_context if naming else create_ssl_context
        context = await loop.run_in_executor(None, create, cafile)
        _contexts[cafile, naming] = context
    return context


async def read_device_name(host: str, naming_context: ssl.SSLContext, seconds: float) -> str:
    """The name ``appliance/<type>/<serial>`` in the certificate of the device at ``host``.

    A device found by its address alone (no mDNS ``id``): the TLS handshake verifies the chain
    against the context's CA, and the name the certificate carries is then the one every request
    must find again. ``UntrustedDevice`` when the chain is not the CA's, ``NotHomeWizard`` when the
    name is not a device's.
    """
    url = URL(f"https://{normalise_host(host)}")
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(url.host, url.port, ssl=naming_context)
    except TimeoutError as err:
        raise CannotConnect(f"{url} did not answer within {seconds:g} s") from err
    except ssl.SSLCertVerificationError:
        raise UntrustedDevice(f"{url} has no certificate of the HomeWizard CA") from None
    except OSError as err:
        raise CannotConnect(f"cannot connect to {url}: {loggable(err)}") from err
    certificate = writer.get_extra_info("peercert") or {}
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(seconds):
            await writer.wait_closed()
    subject = certificate.get("subject", ()) if isinstance(certificate, dict) else ()
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]
    if len(names) != 1 or not _DEVICE_NAME.fullmatch(names[0]):
        raise NotHomeWizard(f"{url} does not name a HomeWizard device in its certificate")
    name: str = names[0]
    return name
