from __future__ import annotations

from pathlib import Path

import pytest

from foxtrot_stream.config.settings import SettingsSchema
from foxtrot_stream.contract.plugins import PluginHost

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def host() -> PluginHost:
    """The plugins actually installed in this environment, found through entry points."""
    return PluginHost.discover()


@pytest.fixture(scope="session")
def schema(host: PluginHost) -> SettingsSchema:
    return host.schema()
