"""docs/configuration.md stays true: every key, type and default matches the settings classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from foxtrot_stream.config.settings import SettingsSchema, all_keys

BUNDLED = ("binance", "http_fallback", "okx", "redis")
DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| `([^`]*)` \| (.+) \|$")


def test_configuration_reference_matches_settings(schema: SettingsSchema) -> None:
    documented = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            documented[m.group(1)] = (m.group(2).strip(), json.loads(m.group(3)), m.group(4))
    # the bundled plugins' keys: another installed plugin documents its own
    bundled = {k: v for k, v in schema.plugin_settings.items() if k in BUNDLED}
    generic = SettingsSchema(adapters=("<adapter>",), plugin_settings=bundled)
    actual = {d.key: (d.type, d.default, d.doc) for d in all_keys(generic)}
    assert set(documented) == set(actual)
    for key, (type_, default, doc) in actual.items():
        assert documented[key][:2] == (type_, default), key
        assert doc and documented[key][2] == doc, key


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    import inspect

    from foxtrot_stream.contract import hookspecs

    text = (DOC.parent / "plugins.md").read_text(encoding="utf-8")
    specs = [
        (name, f)
        for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "foxtrot_stream_spec")
    ]
    assert len(specs) == 11
    for name, f in specs:
        signature = str(inspect.signature(f)).replace("'", "")
        assert f"def {name}{signature}" in text, name
        doc = f.__doc__ or ""
        for part in ("Called", "Return", "On raise"):
            assert part.lower() in doc.lower(), (name, part)


def test_the_host_vt_setting_example_is_strict_json_that_we_accept(
    schema: SettingsSchema, tmp_path: Path
) -> None:
    """docs/foxtrot-engine.md shows a vt_setting.json for Foxtrot and vnpy: their json.load
    must read it, and foxtrot-stream must accept it without a word."""
    from foxtrot_stream.config.settings import load
    from foxtrot_stream.surfaces.cli import main

    text = (DOC.parent / "foxtrot-engine.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    example = next(b for b in blocks if '"websocket.enabled": true' in b)
    values = json.loads(example)  # what the hosts do
    assert values["websocket.enabled"] is True and "font.family" in values
    assert load(text=example, schema=schema).problems == ()
    host_file = tmp_path / "vt_setting.json"
    host_file.write_text(example, encoding="utf-8")
    assert main(["config", "check", str(host_file)]) == 0
