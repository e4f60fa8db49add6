"""Discovery through entry points, with real (tiny) distributions on the test path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from foxtrot_stream.config.settings import load
from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.plugins import (
    GROUP,
    Origin,
    PluginHost,
    PluginLoadError,
    discover_entry_points,
)
from foxtrot_stream.contract.records import AdapterSpec, SourceSpec, TransportSpec
from foxtrot_stream.testing import fake_distribution, host_from_path

GOOD = """
import attrs
from foxtrot_stream.contract.hookspecs import hookimpl
from foxtrot_stream.contract.records import AdapterSpec, TransportSpec

@attrs.frozen
class KrakenSettings:
    url: str = "wss://ws.kraken.com"

@hookimpl
def register_adapters():
    return [AdapterSpec(name="kraken", display_name="KrakenAdapter",
                        settings_cls=KrakenSettings, factory=lambda s: None)]
"""


def test_bundled_plugins_are_found_through_entry_points(host: PluginHost) -> None:
    found = {p.origin.entry_point: p.origin.distribution for p in host.plugins}
    # other installed plugins may be there too: the bundled ones must be
    assert (
        found.items()
        >= {
            "binance": "foxtrot-stream-binance",
            "core": "foxtrot-stream",
            "http_fallback": "foxtrot-stream-http-fallback",
            "okx": "foxtrot-stream-okx",
        }.items()
    )
    assert host.problems == []
    assert set(host.adapters) >= {"binance", "okx"}
    assert set(host.transports) >= {"websocket", "http"}
    assert set(host.policies) >= {"exponential"}
    assert str(host.origins["adapter:binance"]).startswith("foxtrot-stream-binance 0.1.0")
    assert str(host.origins["adapter:okx"]).startswith("foxtrot-stream-okx 0.1.0")


def test_third_party_plugin_adds_adapter_and_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_distribution(
        tmp_path, "foxtrot-kraken", "1.2.3", {"kraken": "fx_kraken"}, {"fx_kraken": GOOD}
    )
    monkeypatch.syspath_prepend(str(root))
    host = host_from_path(root)
    assert host.problems == []
    assert set(host.adapters) == {"kraken"}
    settings = load(
        text='{"websocket.kraken.enabled": false, "kraken.url": "wss://other"}',
        schema=host.schema(),
    ).settings
    assert settings.adapter("kraken").enabled is False
    assert settings.plugin("kraken").url == "wss://other"


BROKEN = {
    "import_error": ("import nonexistent_module_xyz\n", "cannot import"),
    "bad_signature": (
        "from foxtrot_stream.contract.hookspecs import hookimpl\n"
        "@hookimpl\ndef on_failure(failure, extra_arg):\n    pass\n",
        "bad hook implementation",
    ),
    "misspelt": (
        "from foxtrot_stream.contract.hookspecs import hookimpl\n"
        "@hookimpl\ndef on_failur(failure):\n    pass\n",
        "unknown hook",
    ),
    "async_hook": (
        "from foxtrot_stream.contract.hookspecs import hookimpl\n"
        "@hookimpl\nasync def on_failure(failure):\n    pass\n",
        "async def",
    ),
    "wrong_record": (
        "from foxtrot_stream.contract.hookspecs import hookimpl\n"
        "@hookimpl\ndef register_adapters():\n    return ['binance']\n",
        "expected AdapterSpec",
    ),
    "raises": (
        "from foxtrot_stream.contract.hookspecs import hookimpl\n"
        "@hookimpl\ndef register_adapters():\n    raise RuntimeError('boom')\n",
        "raised RuntimeError: boom",
    ),
    "global_name": (
        GOOD.replace('name="kraken"', 'name="reconnect"'),
        "collides with the global key websocket.reconnect",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_is_reported_with_dist_and_skipped(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, expected = BROKEN[case]
    root = fake_distribution(
        tmp_path, f"broken-{case}", "0.9", {case: f"b_{case}"}, {f"b_{case}": source}
    )
    fake_distribution(
        tmp_path, "foxtrot-kraken", "1.2.3", {"kraken": "fx_kraken"}, {"fx_kraken": GOOD}
    )
    monkeypatch.syspath_prepend(str(root))
    host = host_from_path(root)
    (problem,) = host.problems
    assert problem.origin.distribution == f"broken-{case}"
    assert problem.origin.version == "0.9"
    assert expected in problem.error
    assert f"broken-{case} 0.9" in str(problem)
    # the good plugin beside it still loads
    assert "kraken" in host.adapters
    assert [p.origin.entry_point for p in host.plugins] == ["kraken"]


def test_duplicate_name_reports_both_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_distribution(tmp_path, "a-kraken", "1.0", {"kraken_a": "ka"}, {"ka": GOOD})
    fake_distribution(tmp_path, "b-kraken", "2.0", {"kraken_b": "kb"}, {"kb": GOOD})
    monkeypatch.syspath_prepend(str(root))
    host = host_from_path(root)
    (problem,) = host.problems
    assert problem.origin.distribution == "b-kraken"
    assert "already registered by a-kraken 1.0" in problem.error
    assert host.origins["adapter:kraken"].distribution == "a-kraken"


def test_broken_plugin_enabled_by_settings_fails_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_distribution(
        tmp_path,
        "foxtrot-kraken",
        "1.2.3",
        {"kraken": "fx_kraken_broken"},
        {"fx_kraken_broken": "raise ImportError('no lib')\n"},
    )
    monkeypatch.syspath_prepend(str(root))
    host = host_from_path(root)
    assert len(host.problems) == 1
    # not mentioned: reported, skipped, startup goes on
    host.check_required(load(text="{}", schema=host.schema()).settings)
    # mentioned by the settings: startup fails, naming the distribution and the cause
    settings = load(text='{"websocket.enabled": true}', schema=host.schema()).settings
    settings = type(settings)(settings.websocket, {}, {}, {"websocket.kraken.enabled": "file"})
    with pytest.raises(PluginLoadError, match=r"foxtrot-kraken 1\.2\.3.*no lib"):
        host.check_required(settings)
    with pytest.raises(PluginLoadError):
        host.check_required(load(text="{}", schema=host.schema()).settings, ["kraken"])


def test_disabled_adapter_still_loads(host: PluginHost) -> None:
    settings = load(
        text='{"websocket.enabled": true, "websocket.binance.enabled": false}',
        schema=host.schema(),
    ).settings
    host.check_required(settings)
    assert "binance" in host.adapters


def test_plugin_observer_that_raises_is_contained(host: PluginHost) -> None:
    from foxtrot_stream.contract.hookspecs import hookimpl
    from foxtrot_stream.contract.plugins import Origin
    from foxtrot_stream.contract.records import Failure

    seen: list[Failure] = []

    class Observer:
        @hookimpl
        def on_failure(self, failure: Failure) -> None:
            seen.append(failure)

    class Raiser:
        @hookimpl
        def on_failure(self, failure: Failure) -> None:
            raise RuntimeError("observer bug")

    local = PluginHost.discover()
    local.register(Observer(), Origin("observer", "t", "test", "0"))
    local.register(Raiser(), Origin("raiser", "t", "test", "0"))
    errors = local.on_failure(Failure("binance", "websocket", "dropped", "test"))
    assert len(seen) == 1
    assert [str(e) for e in errors] == ["observer bug"]


class _Handler:
    """A frame-handler-wrapping plugin (a recorder, say)."""

    def __init__(self) -> None:
        self.built = 0

    @hookimpl
    def on_message(self, adapter: Any, sink: Any, events: Any) -> Any:
        self.built += 1
        return lambda frame, received_ns: None


@pytest.mark.parametrize("before", [True, False], ids=["arecorder", "zrecorder"])
def test_a_plugin_overrides_the_core_default_whatever_its_name(before: bool) -> None:
    """The core's default hook implementations are `trylast`: a plugin's own answer wins
    whether it is registered before the core (its entry point sorts first) or after."""
    host = PluginHost()
    recorder = _Handler()
    if before:
        host.register(recorder, Origin("arecorder", "tests", "tests", "0"))
    for ep in discover_entry_points(GROUP):
        host.load(ep)
    if not before:
        host.register(recorder, Origin("zrecorder", "tests", "tests", "0"))
    handler = host.on_message(object(), lambda tick: None, object())  # type: ignore[arg-type]
    assert recorder.built == 1 and handler is not None


class _Connector:
    """A plugin that supplies its own connections for its own adapter."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def register_adapters(self) -> list[AdapterSpec]:
        return [AdapterSpec("toyx", "ToyxAdapter", None, lambda s: None)]

    @hookimpl
    def connect(self, context: Any, transport: str, symbols: Any, listener: Any) -> Any:
        self.asked.append(context.adapter.name)
        return None


def test_connect_is_asked_only_of_plugins_serving_the_adapter(host: PluginHost) -> None:
    connector = _Connector()
    host.register(connector, Origin("toyx", "tests", "tests", "0"))

    class Context:
        def __init__(self, name: str) -> None:
            self.adapter = type("A", (), {"name": name})()

    host.connect(Context("binance"), "nonexistent", [], object())  # type: ignore[arg-type]
    assert connector.asked == []  # not its adapter, not its transport
    host.connect(Context("toyx"), "nonexistent", [], object())  # type: ignore[arg-type]
    assert connector.asked == ["toyx"]


def test_the_feed_streams_over_the_transport_registered_for_its_adapter(host: PluginHost) -> None:
    """The feed names no transport: a plugin registering a stream transport for an adapter
    makes that adapter's feeds connect over it; the others keep the core's general one."""
    assert host.stream_transport("binance") == "websocket"

    class Own:
        @hookimpl
        def register_transports(self) -> list[TransportSpec]:
            return [TransportSpec("binance_fix", None, adapters=("binance",))]

    host.register(Own(), Origin("binance_fix", "tests", "tests", "0"))
    assert host.stream_transport("binance") == "binance_fix"
    assert host.stream_transport("other") == "websocket"
    assert host.transports["http"].role == "poll"


def test_sources_are_found_by_scheme_and_their_names_and_keys_checked() -> None:
    @attrs.frozen
    class TapSettings:
        consume: bool = False

    def spec(name: str, cls: type[Any] | None = TapSettings, key: str | None = None) -> SourceSpec:
        return SourceSpec(name=name, factory=lambda s, r: None,  # type: ignore[arg-type,return-value]
                          settings_cls=cls, settings_key=key, schemes=("tap",))  # fmt: skip

    class Plugin:
        def __init__(self, *specs: SourceSpec) -> None:
            self.specs = list(specs)

        @hookimpl
        def register_sources(self) -> list[SourceSpec]:
            return self.specs

    local = PluginHost()
    assert local.register(Plugin(spec("tap")), Origin("tap", "t", "tap-dist", "1")) is not None
    assert local.source_for_url("TAP://host/0") is local.sources["tap"]
    assert local.source_for_url("redis://host/0") is None
    assert "tap" in local.schema().plugin_settings
    assert local.register(Plugin(spec("tap", None)), Origin("tap2", "t", "other", "2")) is None
    assert "source name 'tap' is already registered by tap-dist 1" in str(local.problems[-1])
    assert local.register(Plugin(spec("tip", key="tap")), Origin("tip", "t", "x", "3")) is None
    assert "settings key 'tap' is already owned" in str(local.problems[-1])
