"""A certificate authority of the simulator's own, made at start-up, for its HTTPS devices.

HomeWizard devices carry a certificate of the HomeWizard CA named ``appliance/<type>/<serial>``
in its common name. The simulator cannot have the vendor's key, so it makes a CA of its own and
issues such certificates; the clients under test trust this CA (``ca_file``) instead of the
vendor's through their test seam.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
import ssl
import tempfile
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALIDITY: Final = timedelta(days=2)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Meter Hub simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class SimulatorAuthority:
    """A CA whose files live in a temporary folder until ``cleanup()``."""

    def __init__(self) -> None:
        """Make the CA's key and certificate (blocking: some milliseconds)."""
        self._folder = tempfile.TemporaryDirectory(prefix="meter-hub-sim-ca-")
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("Meter Hub simulator CA"))
            .issuer_name(_name("Meter Hub simulator CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file: Final = Path(self._folder.name) / "ca.pem"
        self.ca_file.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def server_context(self, common_name: str) -> ssl.SSLContext:
        """A server context with a certificate of this CA for ``common_name`` (CN only, no SAN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .sign(self._key, hashes.SHA256())
        )
        stem = Path(self._folder.name) / common_name.replace("/", "_")
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context

    def cleanup(self) -> None:
        """Remove the CA's files."""
        self._folder.cleanup()
