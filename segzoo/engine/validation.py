"""Config checks run before anything is built: unknown override keys and unknown component names.

MONAI's bundle runner silently adds an override key the config does not have
(``--epoch 5`` trains the default 50 epochs); these checks stop such a run
first, naming the key, the config file and the closest valid names.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any, Sequence

import segzoo
from segzoo.overrides import is_none
from segzoo.registry import SegzooError

# arguments of ``python -m monai.bundle run`` itself, not config overrides
RUNNER_ARGS = {"config_file", "meta_file", "logging_file", "args_file", "tracking", "run_id", "init_id", "final_id", "workflow_type"}


class ConfigError(SegzooError, ValueError):
    """A bundle config or override names something that does not exist."""


def cli_overrides(argv: Sequence[str]) -> list[str]:
    """The ``--key`` names of a ``monai.bundle run`` command line (``--key value`` or ``--key=value``)."""
    keys = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            key = arg[2:].split("=", 1)[0]
            if key not in RUNNER_ARGS:
                keys.append(key)
    return keys


def _config_files(argv: Sequence[str]) -> list[str]:
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--config_file" and i + 1 < len(argv) else arg.split("=", 1)[1] if arg.startswith("--config_file=") else None
        if value is not None:
            value = value.strip()
            return [v.strip(" '\"") for v in value.strip("[]").split(",")] if value.startswith("[") else [value]
    return []


def unknown_override(key: str, config: dict[str, Any]) -> str | None:
    """Why ``key`` is not a key of ``config`` (None if it is). Sub-keys of an empty dict (``arch_params``) are free."""
    node: Any = config
    path: list[str] = []
    for part in key.split("#"):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
            continue
        if isinstance(node, dict) and not node and path:
            return None  # an open parameter dict such as arch_params
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            path.append(part)
            continue
        where = "#".join(path) or "the top level"
        choices = [str(k) for k in node] if isinstance(node, dict) else []
        close = difflib.get_close_matches(part, choices, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join('--' + '#'.join([*path, c]) for c in close)}?" if close else ""
        return f"--{key}: the config has no key '{part}' under {where}.{hint}"
    return None


def check_overrides(argv: Sequence[str] | None = None) -> None:
    """Refuse ``monai.bundle run`` overrides that name no key of the config files (typos train with defaults)."""
    from monai.bundle import ConfigParser

    argv = list(sys.argv if argv is None else argv)
    files = _config_files(argv)
    if not files:
        return
    config = ConfigParser.load_config_files(files)
    problems = [p for p in (unknown_override(k, config) for k in cli_overrides(argv)) if p]
    if problems:
        raise ConfigError(
            "unknown override(s) for " + ", ".join(files) + ":\n  " + "\n  ".join(problems)
            + "\nMONAI would add these keys silently and train with the defaults; fix the names (see the bundle's docs/README.md)."
        )


def check_components(components: dict[str, tuple[str, str | list[str] | None]]) -> None:
    """Each ``config_key: (kind, name or names)`` must be registered (a ``none`` name is "not used"); the error names
    the config key and the closest names."""
    for key, (kind, names) in components.items():
        for name in [] if is_none(names) else [names] if isinstance(names, str) else names:
            try:
                segzoo.get(kind, name)
            except SegzooError as err:
                raise ConfigError(f"config key '{key}' = {name!r}: {err}") from None


def check_params(key: str, kind: str, name: str | None, preset: str | None = None, **params: Any) -> None:
    """Validate a component's parameters up front, so a wrong type names the config key that holds it (a ``none``
    name, an optional component not used, has none to check)."""
    if is_none(name):
        return
    try:
        segzoo.get(kind, name).validate(preset, **params)
    except SegzooError as err:
        raise ConfigError(f"config key '{key}': {err}") from None
