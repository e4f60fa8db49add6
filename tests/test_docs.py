"""docs/configuration.md stays true: every key, type and default matches the settings classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from foxtrot_stream.settings import SettingsSchema, all_keys

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| `([^`]*)` \| (.+) \|$")


def test_configuration_reference_matches_settings(schema: SettingsSchema) -> None:
    documented = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            documented[m.group(1)] = (m.group(2).strip(), json.loads(m.group(3)), m.group(4))
    generic = SettingsSchema(adapters=("<adapter>",), plugin_settings=schema.plugin_settings)
    actual = {d.key: (d.type, d.default, d.doc) for d in all_keys(generic)}
    assert set(documented) == set(actual)
    for key, (type_, default, doc) in actual.items():
        assert documented[key][:2] == (type_, default), key
        assert doc and documented[key][2] == doc, key
