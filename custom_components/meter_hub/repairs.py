"""Repairs: move a HomeWizard entry from the local API v1 to v2, keeping every entity.

The entities' unique ids are built from canonical keys that are the same in both API versions, so
moving an entry only changes how it reaches the device (HTTPS and a token): entity ids, names and
statistics stay. The fix runs the same pairing as the reauth of a v2 entry.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .api.homewizard.hosts import v2_host
from .compat import RepairsFlowResult
from .const import CONF_API_VERSION, DOMAIN
from .coordinator import MeterHubConfigEntry

ISSUE_PREFIX = "api_v2_available_"


def issue_id(entry: MeterHubConfigEntry) -> str:
    """The repair issue of ``entry``."""
    return f"{ISSUE_PREFIX}{entry.entry_id}"


@callback
def async_offer_api_v2(
    hass: HomeAssistant,
    entry: MeterHubConfigEntry,
    host: str | None = None,
    *,
    v1_disabled: bool = False,
) -> None:
    """Ask the user to move ``entry`` to API v2, reached at ``host``.

    Without ``host``: the address already known to the issue (one the device announced), else
    the entry's with port 443.
    """
    if host is None:
        known = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry))
        known_host = (known.data or {}).get(CONF_HOST) if known else None
        host = str(known_host) if known_host else v2_host(entry.data[CONF_HOST])
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR if v1_disabled else ir.IssueSeverity.WARNING,
        translation_key="api_v1_disabled" if v1_disabled else "api_v2_available",
        translation_placeholders={"name": entry.title},
        data={"entry_id": entry.entry_id, CONF_HOST: host},
    )


class MoveToApiV2Flow(RepairsFlow):
    """Confirm, then pair with the device (the entry's reauth flow) and move the entry."""

    def __init__(self, entry_id: str, host: str) -> None:
        """Move entry ``entry_id``; the device's API v2 is at ``host``."""
        self._entry_id = entry_id
        self._host = host

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Start with the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Explain; on Submit, open the pairing."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        if user_input is not None:
            # A reauth of API v1 (switch the local API on) gives way to the pairing with v2.
            for flow in entry.async_get_active_flows(self.hass, {SOURCE_REAUTH}):
                self.hass.config_entries.flow.async_abort(flow["flow_id"])
            entry.async_start_reauth(self.hass, data={CONF_API_VERSION: 2, CONF_HOST: self._host})
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm", description_placeholders={"name": entry.title}
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    """The fix of an issue of this integration (each names its entry and the v2 address)."""
    data = data or {}
    return MoveToApiV2Flow(str(data.get("entry_id", "")), str(data.get(CONF_HOST, "")))
