"""Turning a device's refusal of a write into an error the user can read."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
import functools
from typing import Any, Concatenate

from homeassistant.exceptions import HomeAssistantError

from .api.homewizard.errors import ApiDisabled, HomeWizardError, Rejected, Unauthorized
from .const import DOMAIN


def device_write[T, **P](
    write: Callable[Concatenate[T, P], Coroutine[Any, Any, None]],
) -> Callable[Concatenate[T, P], Coroutine[Any, Any, None]]:
    """Wrap an entity's action: client errors become translated ``HomeAssistantError``s."""

    @functools.wraps(write)
    async def handler(entity: T, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await write(entity, *args, **kwargs)
        except ApiDisabled as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="api_disabled"
            ) from err
        except Unauthorized as err:
            # the coordinator has started the reauth
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="token_refused"
            ) from err
        except Rejected as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="write_rejected",
                translation_placeholders={"error": str(err)},
            ) from err
        except HomeWizardError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="write_failed",
                translation_placeholders={"error": str(err)},
            ) from err

    return handler
