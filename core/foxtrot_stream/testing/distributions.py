"""Build a real (if tiny) installed distribution on disk, to test entry-point discovery."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Mapping
from pathlib import Path

from foxtrot_stream.contract.plugins import GROUP, PluginHost


def fake_distribution(
    root: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
) -> Path:
    """Write `<name>-<version>.dist-info` (METADATA, entry_points.txt) and `modules` under `root`.

    `entry_points` maps entry-point names to ``module:attr`` values in group ``foxtrot_stream``;
    `modules` maps dotted module names to their source. Put `root` on ``sys.path`` (pytest's
    ``monkeypatch.syspath_prepend``) and discovery finds it exactly as it finds an installed
    package.
    """
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in (modules or {}).items():
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return root


def host_from_path(root: Path) -> PluginHost:
    """A host that loads only the plugins of the distributions under `root`."""
    eps = [
        ep
        for dist in md.distributions(path=[str(root)])
        for ep in dist.entry_points
        if ep.group == GROUP
    ]
    return PluginHost.discover(sorted(eps, key=lambda e: e.name))
