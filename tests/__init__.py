"""Tests of the Meter Hub integration."""
