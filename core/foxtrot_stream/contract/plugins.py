"""The plugin manager: entry-point discovery, registration checks, and the typed `PluginHost`.

Plugins (the bundled ones too) are found only through entry points in group ``foxtrot_stream``,
loaded one at a time in sorted order, and checked before they are trusted: a plugin that fails
to import, has a bad or misspelt hook, an ``async def`` hookimpl, or registers a name that is
already taken is reported with its distribution and version and skipped. If the settings refer
to a skipped plugin, `PluginHost.check_required` turns that into a startup error.

Only `PluginHost` touches ``pm.hook``, so the rest of the core stays type-checked.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import attrs
import pluggy

from foxtrot_stream.config.settings import GLOBAL_GROUPS, Settings, SettingsSchema
from foxtrot_stream.contract import hookspecs
from foxtrot_stream.contract.records import (
    AdapterSpec,
    Connection,
    ConnectionEvents,
    ConnectionListener,
    ExchangeAdapter,
    Failure,
    FeedContext,
    FrameHandler,
    PolicySpec,
    Poller,
    SinkSpec,
    SourceSpec,
    StateChange,
    TickSink,
    TransportSpec,
)

GROUP = "foxtrot_stream"
CORE_DISTRIBUTION = "foxtrot-stream"  # its own plugin (policy, transport) is always needed
log = logging.getLogger("foxtrot_stream.contract.plugins")


@attrs.frozen
class Origin:
    """Where a plugin came from: its entry point and distribution."""

    entry_point: str
    value: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (entry point {self.entry_point!r})"


@attrs.frozen
class LoadedPlugin:
    origin: Origin
    adapters: tuple[str, ...]
    transports: tuple[str, ...]
    policies: tuple[str, ...]
    hooks: tuple[str, ...]
    sinks: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@attrs.frozen
class PluginProblem:
    origin: Origin
    error: str

    def __str__(self) -> str:
        return f"plugin {self.origin} skipped: {self.error}"


class PluginLoadError(Exception):
    """A plugin the settings need could not be loaded."""


R = TypeVar("R")


def _origin(ep: md.EntryPoint) -> Origin:
    dist = ep.dist
    return Origin(
        ep.name,
        ep.value,
        dist.metadata["Name"] if dist is not None else "unknown distribution",
        dist.version if dist is not None else "unknown version",
    )


def discover_entry_points(group: str = GROUP) -> list[md.EntryPoint]:
    """Entry points of `group`, sorted by name: discovery order depends on the filesystem."""
    seen: dict[str, md.EntryPoint] = {}
    for ep in sorted(md.entry_points(group=group), key=lambda e: (e.name, e.value)):
        # the same distribution seen twice on sys.path (an editable install, say) is one plugin
        seen.setdefault(f"{ep.name}={ep.value}", ep)
    return list(seen.values())


class PluginHost:
    """The loaded plugins and typed access to their hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[LoadedPlugin] = []
        self.problems: list[PluginProblem] = []
        self.adapters: dict[str, AdapterSpec] = {}
        self.transports: dict[str, TransportSpec] = {}
        self.policies: dict[str, PolicySpec] = {}
        self.sinks: dict[str, SinkSpec] = {}
        self.sources: dict[str, SourceSpec] = {}
        self._serves: dict[int, tuple[frozenset[str], tuple[TransportSpec, ...]]] = {}
        """id(plugin object) → (its adapters, its transports): whom its `connect` serves."""
        self._connect_callers: dict[tuple[str, str], Any] = {}
        self.origins: dict[str, Origin] = {}
        """Registration name (``adapter:binance``, …) → where it came from."""

    @classmethod
    def discover(cls, entry_points: Iterable[md.EntryPoint] | None = None) -> PluginHost:
        host = cls()
        eps = discover_entry_points() if entry_points is None else list(entry_points)
        for ep in eps:
            host.load(ep)
        return host

    # --- loading ---------------------------------------------------------------------------

    def load(self, ep: md.EntryPoint) -> LoadedPlugin | None:
        origin = _origin(ep)
        try:
            module = ep.load()
        except Exception as exc:  # any import-time error is the plugin's, not ours
            return self._skip(origin, f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
        return self.register(module, origin)

    def register(self, plugin: object, origin: Origin) -> LoadedPlugin | None:
        """Register one plugin object (a module or instance), checking it fully first."""
        name = f"{origin.entry_point}:{origin.distribution}"
        bad_async = [
            attr
            for attr in dir(plugin)
            if attr in self._hook_names()
            and inspect.iscoroutinefunction(getattr(plugin, attr, None))
        ]
        if bad_async:
            return self._skip(
                origin,
                f"hook {bad_async[0]} is 'async def'; hooks must be plain functions "
                "(return an object with async methods instead)",
            )
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:  # already registered
            return self._skip(origin, str(exc))
        except pluggy.PluginValidationError as exc:
            return self._skip(origin, f"bad hook implementation: {exc}")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            return self._skip(origin, f"unknown hook (misspelt?): {exc}")
        try:
            adapters = self._collect(plugin, "register_adapters", AdapterSpec)
            transports = self._collect(plugin, "register_transports", TransportSpec)
            policies = self._collect(plugin, "register_policies", PolicySpec)
            sinks = self._collect(plugin, "register_sinks", SinkSpec)
            sources = self._collect(plugin, "register_sources", SourceSpec)
            self._check_names(origin, adapters, transports, policies, sinks, sources)
        except _Refused as exc:
            self.pm.unregister(name=name)
            return self._skip(origin, str(exc))
        self._serves[id(plugin)] = (frozenset(a.name for a in adapters), tuple(transports))
        self._connect_callers.clear()
        for a in adapters:
            self.adapters[a.name] = a
            self.origins[f"adapter:{a.name}"] = origin
        for t in transports:
            self.transports[t.name] = t
            self.origins[f"transport:{t.name}"] = origin
        for p in policies:
            self.policies[p.name] = p
            self.origins[f"policy:{p.name}"] = origin
        for k in sinks:
            self.sinks[k.name] = k
            self.origins[f"sink:{k.name}"] = origin
        for src in sources:
            self.sources[src.name] = src
            self.origins[f"source:{src.name}"] = origin
        hooks = tuple(
            sorted(
                hc.name
                for hc in self.pm.get_hookcallers(plugin) or []
                for impl in hc.get_hookimpls()
                if impl.plugin is plugin
            )
        )
        loaded = LoadedPlugin(
            origin,
            tuple(a.name for a in adapters),
            tuple(t.name for t in transports),
            tuple(p.name for p in policies),
            hooks,
            tuple(k.name for k in sinks),
            tuple(src.name for src in sources),
        )
        self.plugins.append(loaded)
        return loaded

    def _hook_names(self) -> set[str]:
        return {
            name for name in dir(hookspecs) if hasattr(getattr(self.pm.hook, name, None), "spec")
        }

    def _skip(self, origin: Origin, error: str) -> LoadedPlugin | None:
        """Record why a plugin is skipped; returns None, the result of a skipped load."""
        problem = PluginProblem(origin, error)
        self.problems.append(problem)
        log.warning("%s", problem)
        return None

    def _collect(self, plugin: object, hook: str, kind: type[R]) -> list[R]:
        caller = getattr(self.pm.hook, hook)
        out: list[R] = []
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                result = impl.function()
            except Exception as exc:
                raise _Refused(f"{hook} raised {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if isinstance(result, kind) or not isinstance(result, Sequence):
                raise _Refused(f"{hook} must return a list of {kind.__name__}, got {result!r}")
            for item in result:
                if not isinstance(item, kind):
                    raise _Refused(f"{hook} returned {item!r}, expected {kind.__name__}")
                out.append(item)
        return out

    def _check_names(
        self,
        origin: Origin,
        adapters: list[AdapterSpec],
        transports: list[TransportSpec],
        policies: list[PolicySpec],
        sinks: Sequence[SinkSpec] = (),
        sources: Sequence[SourceSpec] = (),
    ) -> None:
        Spec = AdapterSpec | TransportSpec | PolicySpec | SinkSpec | SourceSpec
        kinds: tuple[tuple[str, Sequence[Spec]], ...] = (
            ("adapter", adapters),
            ("transport", transports),
            ("policy", policies),
            ("sink", sinks),
            ("source", sources),
        )
        for kind, items in kinds:
            names = [i.name for i in items]
            for n in names:
                other = self.origins.get(f"{kind}:{n}")
                if other is not None:
                    raise _Refused(f"{kind} name {n!r} is already registered by {other}")
                if names.count(n) > 1:
                    raise _Refused(f"{kind} name {n!r} is registered twice")
        for a in adapters:
            if a.name in GLOBAL_GROUPS:
                raise _Refused(
                    f"adapter name {a.name!r} collides with the global key websocket.{a.name}"
                )
        taken = set(self.schema().plugin_settings)
        for key in (
            [a.name for a in adapters if a.settings_cls]
            + [t.settings_key or t.name for t in transports if t.settings_cls]
            + [k.key for k in sinks]
        ):
            if key in taken or key == "websocket":
                raise _Refused(f"settings key {key!r} is already owned by another plugin")
            taken.add(key)
        own = {k.key: k.settings_cls for k in sinks}
        for src in sources:
            if src.settings_cls is None:
                continue
            # a source may share its keys with a sink of the same plugin (same class)
            if own.get(src.key) is src.settings_cls:
                continue
            if src.key in taken or src.key == "websocket":
                raise _Refused(f"settings key {src.key!r} is already owned by another plugin")
            taken.add(src.key)
            own[src.key] = src.settings_cls

    # --- settings --------------------------------------------------------------------------

    def schema(self) -> SettingsSchema:
        plugin_settings: dict[str, type[Any]] = {}
        for a in self.adapters.values():
            if a.settings_cls is not None:
                plugin_settings[a.name] = a.settings_cls
        for t in self.transports.values():
            if t.settings_cls is not None:
                plugin_settings[t.settings_key or t.name] = t.settings_cls
        for p in self.policies.values():
            if p.settings_cls is not None:
                plugin_settings[p.name] = p.settings_cls
        for k in self.sinks.values():
            plugin_settings[k.key] = k.settings_cls
        for src in self.sources.values():
            if src.settings_cls is not None:
                plugin_settings[src.key] = src.settings_cls
        return SettingsSchema(tuple(sorted(self.adapters)), plugin_settings)

    def check_required(self, settings: Settings, symbols_for: Iterable[str] = ()) -> None:
        """Fail startup if the settings use a plugin that was skipped.

        A skipped plugin is needed when its entry-point name is an adapter name the settings
        mention (``websocket.<name>.*`` or ``<name>.*`` set in the file), when it is asked for,
        and always when it is the core's own. Also fails when ``websocket.policy`` names a
        policy no plugin provides.
        """
        wanted = set(symbols_for)
        for key in settings.origin:
            parts = key.split(".")
            wanted.add(parts[1] if parts[0] == "websocket" and len(parts) == 3 else parts[0])
        fatal = [
            f"plugin {p.origin} is enabled by the settings but could not be loaded: {p.error}"
            for p in self.problems
            if p.origin.entry_point in wanted or p.origin.distribution == CORE_DISTRIBUTION
        ]
        policy = settings.websocket.policy
        # a host without any policy has no core plugin either: nothing here could run a feed
        if policy not in self.policies and (self.policies or "websocket.policy" in settings.origin):
            installed = ", ".join(sorted(self.policies)) or "none"
            fatal.append(
                f"websocket.policy = {policy!r}: no policy plugin of that name is installed "
                f"(installed: {installed})"
            )
        if fatal:
            raise PluginLoadError("\n".join(fatal))

    # --- typed hook calls --------------------------------------------------------------------

    def connect(
        self,
        context: FeedContext,
        transport: str,
        symbols: Sequence[str],
        listener: ConnectionListener,
    ) -> Connection | None:
        adapter = context.adapter.name
        caller = self._connect_callers.get((transport, adapter))
        if caller is None:
            caller = self._connect_callers[(transport, adapter)] = self.pm.subset_hook_caller(
                "connect",
                [p for p in self.pm.get_plugins() if not self._serves_for(p, transport, adapter)],
            )
        result: Connection | None = caller(
            context=context, transport=transport, symbols=symbols, listener=listener
        )
        return result

    def sink_for_url(self, url: str) -> SinkSpec | None:
        """The sink whose `schemes` include `url`'s scheme (`redis://…` → the Redis sink)."""
        scheme = url.partition("://")[0].lower()
        return next((k for k in self.sinks.values() if scheme in k.schemes), None)

    def source_for_url(self, url: str) -> SourceSpec | None:
        """The source whose `schemes` include `url`'s scheme (`redis://…` → the Redis source)."""
        scheme = url.partition("://")[0].lower()
        return next((s for s in self.sources.values() if scheme in s.schemes), None)

    def consuming_source(self, settings: Settings) -> tuple[SourceSpec, Any] | None:
        """The source the settings tell hosts to read from (``<key>.consume`` true), with its
        settings object; None: hosts connect to the exchanges. Several: the first by name."""
        for name in sorted(self.sources):
            spec = self.sources[name]
            obj = settings.plugins.get(spec.key)
            if obj is not None and getattr(obj, "consume", False) is True:
                return spec, obj
        return None

    def enabled_sinks(self, settings: Settings) -> list[tuple[SinkSpec, Any]]:
        """Each sink the settings enable (``<key>.enabled``), with its settings object."""
        out = []
        for spec in self.sinks.values():
            obj = settings.plugins.get(spec.key)
            if obj is not None and getattr(obj, "enabled", False) is True:
                out.append((spec, obj))
        return out

    def stream_transport(self, adapter: str) -> str | None:
        """The stream transport a feed of `adapter` connects over: one registered for this
        adapter if any, else a general one (in registration order); None if none is."""
        streams = [t for t in self.transports.values() if t.role == "stream"]
        own = [t for t in streams if adapter in t.adapters]
        chosen = own or [t for t in streams if not t.adapters]
        return chosen[0].name if chosen else None

    def _serves_for(self, plugin: object, transport: str, adapter: str) -> bool:
        """A plugin's `connect` is asked for connections of its own adapters, and of the
        transports it registered (for the adapters they serve)."""
        adapters, transports = self._serves.get(id(plugin), (frozenset(), ()))
        return adapter in adapters or any(
            t.name == transport and (not t.adapters or adapter in t.adapters) for t in transports
        )

    def control_messages(
        self,
        adapter: ExchangeAdapter,
        method: str,
        streams: Sequence[str],
        next_id: Callable[[], int],
    ) -> list[str]:
        result: list[str] | None = self.pm.hook.control_messages(
            adapter=adapter, method=method, streams=streams, next_id=next_id
        )
        return result or []

    def on_message(
        self, adapter: ExchangeAdapter, sink: TickSink, events: ConnectionEvents
    ) -> FrameHandler:
        result: FrameHandler | None = self.pm.hook.on_message(
            adapter=adapter, sink=sink, events=events
        )
        if result is None:
            raise LookupError(f"no plugin returned a frame handler for adapter {adapter.name!r}")
        return result

    def on_failure(self, failure: Failure) -> list[BaseException]:
        return self._tell(self.pm.hook.on_failure, failure=failure)

    def on_state_change(self, change: StateChange) -> list[BaseException]:
        return self._tell(self.pm.hook.on_state_change, change=change)

    @staticmethod
    def _tell(hook: pluggy.HookCaller, **kwargs: object) -> list[BaseException]:
        """Tell every observer; an observer that raises is returned, never propagated."""
        errors: list[BaseException] = []
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(**kwargs)
            except Exception as exc:
                errors.append(exc)
        return errors

    def fallback(self, context: FeedContext, symbols: Sequence[str], reason: str) -> Poller | None:
        result: Poller | None = self.pm.hook.fallback(
            context=context, symbols=symbols, reason=reason
        )
        return result


class _Refused(Exception):
    pass
