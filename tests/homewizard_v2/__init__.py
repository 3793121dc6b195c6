"""Tests of HomeWizard API v2: client, pairing, runtime."""
