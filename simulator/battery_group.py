"""What a HomeWizard P1 or kWh meter does with ``PUT /api/batteries`` (v2 docs: batteries.mdx).

The rules the vendor documents: ``to_full`` (the mode, or ``charge_to_full``) charges to full and
then returns to the mode before; the permissions are read-only meanwhile; ``standby`` is ``zero``
with nothing allowed, so each turns into the other as the permissions change.
"""

from __future__ import annotations

from typing import Any, Final

PERMISSIONS: Final = ("charge_allowed", "discharge_allowed")
WRITABLE: Final = frozenset({"mode", "permissions", "charge_to_full"})


class BatteryGroup:
    """The ``/api/batteries`` body of a meter, changed as the device changes it."""

    def __init__(self, body: dict[str, Any], modes: tuple[str, ...]) -> None:
        """Change ``body`` (in place); ``modes`` are those of the device's API version."""
        self.body = body
        self.modes = modes
        self._mode_before_full = "zero"

    def change(self, changes: object) -> str | None:
        """Apply a ``PUT``; the vendor's error code when the device refuses it."""
        if not isinstance(changes, dict) or not changes.keys() & WRITABLE:
            return "json:no-parameters-recognized"
        if (error := self._check(changes)) is not None:
            return error
        mode, to_full = changes.get("mode"), changes.get("charge_to_full")
        if mode == "to_full" or to_full is True:
            self._charge_to_full()
        elif to_full is False and self.body["mode"] == "to_full":
            self.body["mode"] = self._mode_before_full
            self.body["charge_to_full"] = False
        if mode in ("zero", "standby", "predictive"):
            self.body["mode"] = mode
            if "charge_to_full" in self.body:
                self.body["charge_to_full"] = False
            if mode == "standby":
                self.body["permissions"] = []
            elif mode == "zero" and "permissions" not in changes and not self.body["permissions"]:
                # zero with nothing allowed would be standby again
                self.body["permissions"] = list(PERMISSIONS)
        if "permissions" in changes:
            allowed = [
                permission for permission in PERMISSIONS if permission in changes["permissions"]
            ]
            self.body["permissions"] = allowed
            if self.body["mode"] == "standby" and allowed:
                self.body["mode"] = "zero"
            elif self.body["mode"] == "zero" and not allowed:
                self.body["mode"] = "standby"
        return None

    def _check(self, changes: dict[str, Any]) -> str | None:
        mode = changes.get("mode", self.body["mode"])
        if "mode" in changes and mode not in self.modes:
            return "json:parameter-invalid-type:mode"
        permissions = changes.get("permissions", [])
        if not isinstance(permissions, list) or not set(permissions) <= set(PERMISSIONS):
            return "json:parameter-invalid-type:permissions"
        to_full = changes.get("charge_to_full")
        if "charge_to_full" in changes and (
            not isinstance(to_full, bool) or "charge_to_full" not in self.body
        ):
            return "json:parameter-invalid-type:charge_to_full"
        if "permissions" in changes and (mode == "to_full" or to_full is True):
            # read-only while the batteries charge to full
            return "json:parameter-not-exclusive"
        return None

    def _charge_to_full(self) -> None:
        if self.body["mode"] != "to_full":
            self._mode_before_full = self.body["mode"]
        self.body["mode"] = "to_full"
        if "charge_to_full" in self.body:
            self.body["charge_to_full"] = True
