"""Fake IAMMETER cloud and HomeWizard devices, shared by the tests, the demo and the benchmarks."""
