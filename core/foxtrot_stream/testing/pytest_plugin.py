"""foxtrot-stream's pytest plugin (entry point `pytest11`): fixtures for plugin authors' tests.

Inert until used: it defines fixtures and nothing else (no hooks, no options, no imports of the
runtime until a fixture is requested). The conformance suite itself is a class to subclass:
`foxtrot_stream.testing.kit.ConformanceSuite`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from foxtrot_stream.testing.kit import Recorder


@pytest.fixture
def tick_recorder() -> Recorder:
    """A consumer (`feed.add_consumer(tick_recorder)`) that keeps every tick with its arrival
    time and checks the ordering invariants (`assert_no_duplicate_or_out_of_order`)."""
    from foxtrot_stream.testing.kit import Recorder

    return Recorder()
