"""Helpers for testing plugins: what plugin authors import in their own tests."""

from foxtrot_stream.testing.clock import FakeClock
from foxtrot_stream.testing.distributions import fake_distribution, host_from_path
from foxtrot_stream.testing.settings import FAST_SETTINGS

__all__ = ["FAST_SETTINGS", "FakeClock", "fake_distribution", "host_from_path"]
