"""Helpers shared by the test suites: running the installed decoder, loading the Go fixtures."""
