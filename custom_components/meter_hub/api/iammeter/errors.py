"""Typed errors of the IAMMETER cloud client: each says what went wrong, never a secret."""

from __future__ import annotations

from datetime import timedelta


class IamMeterError(Exception):
    """Base of every error of this client; ``vendor_message`` is the API's message, if any."""

    def __init__(self, text: str, *, vendor_message: str | None = None) -> None:
        """Build the message from our text and the vendor's message."""
        super().__init__(text if vendor_message is None else f"{text}: {vendor_message}")
        self.vendor_message = vendor_message


class CannotConnect(IamMeterError):
    """Network error, timeout, or HTTP 5xx."""


class InvalidAuth(IamMeterError):
    """The login was refused (wrong user name or password)."""


class TokenRejected(IamMeterError):
    """The API rejected the token: log in again."""


class RateLimited(IamMeterError):
    """The vendor's "returns nothing" past a limit (or HTTP 429); ``retry_after`` when known."""

    def __init__(
        self,
        text: str,
        *,
        vendor_message: str | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        """Store how long to wait, when the server said it."""
        super().__init__(text, vendor_message=vendor_message)
        self.retry_after = retry_after


class InvalidResponse(IamMeterError):
    """The answer is not the documented envelope or shape (or is larger than ``MAX_BODY``)."""


class Redirected(CannotConnect):
    """The server answered with a redirect, which is never followed."""


class ApiError(IamMeterError):
    """``successful: false`` for a reason other than auth, token or rate limit."""
