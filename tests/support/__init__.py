"""Loopback servers and helpers shared by the tests."""
