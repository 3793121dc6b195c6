"""Home Assistant custom components of this repository."""
