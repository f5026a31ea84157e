"""Config checks run before anything is built: unknown override keys and unknown component names.

MONAI's bundle runner silently adds an override key the config does not have
(``--epoch 5`` trains the default 50 epochs); these checks stop such a run
first, naming the key, the config file and the closest valid names.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import sys
from collections.abc import Sequence
from typing import Any

from monai.bundle import ConfigParser

import segzoo
from segzoo.bundle.context import current_bundle_config
from segzoo.errors import SegzooError, install_excepthook
from segzoo.overrides import FALSE_WORDS, NONE_WORDS, TRUE_WORDS, is_none, parse_value

# arguments of ``python -m monai.bundle run`` itself, not config overrides
RUNNER_ARGS = {"config_file", "meta_file", "logging_file", "args_file", "tracking", "run_id", "init_id", "final_id", "workflow_type"}


class ConfigError(SegzooError, ValueError):
    """A bundle config or override names something that does not exist."""


def cli_override_values(argv: Sequence[str]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` overrides of a command line, each value read by :func:`parse_value`."""
    found: dict[str, Any] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--") and len(arg) > 2:
            key, sep, text = arg[2:].partition("=")
            if key not in RUNNER_ARGS:
                found[key] = parse_value(text if sep else argv[i + 1] if i + 1 < len(argv) else "true")
    return found


def args_file_values(argv: Sequence[str]) -> dict[str, Any]:
    """The overrides of the ``--args_file`` a command line names (MONAI applies them like ``--key value``)."""
    for i, arg in enumerate(argv):
        path = argv[i + 1] if arg == "--args_file" and i + 1 < len(argv) else arg.split("=", 1)[1] if arg.startswith("--args_file=") else None
        if path is not None:
            values = ConfigParser.load_config_file(path)
            return {k: v for k, v in values.items() if k not in RUNNER_ARGS}
    return {}


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


def _at(config: Any, key: str) -> Any:
    for part in key.split("#"):
        config = config[int(part)] if isinstance(config, list) else config[part]
    return config


def _is_expression(value: Any) -> bool:
    """A MONAI expression (``$...``), reference (``@...``) or macro (``%...``): its type is known only once evaluated."""
    return isinstance(value, str) and value.startswith(("$", "@", "%"))


def wrong_type(key: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` at ``key`` (None if it can): the default's type is the key's type, and a
    number that defaults to zero or more cannot be negative. Expressions and keys that default to null are free."""
    if _is_expression(value) or _is_expression(default) or default is None:
        return None
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list such as [1, 2]",
                dict: "a dict such as {'a': 1}"}.get(type(default))
    if isinstance(default, bool):
        ok = isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS + NONE_WORDS)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = expected is None or isinstance(value, type(default))
    if not ok:
        return f"--{key} {value!r}: expects {expected} like its default {default!r}, got {type(value).__name__}. Pass e.g. --{key} {json_like(default)}"
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0 and value < 0:
        return f"--{key} {value!r}: cannot be negative (its default is {default!r}). Pass a value of 0 or more."
    return None


def json_like(value: Any) -> str:
    """How a value is written after ``--key`` on a command line."""
    return "true" if value is True else "false" if value is False else value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def check_override_values(overrides: dict[str, Any], config: dict[str, Any], files: Sequence[str] = ()) -> None:
    """Refuse overrides that name no key of ``config`` (typos would train with the defaults) or give a value of another
    type than the key's default; each problem names the key, the value and the fix, all in one error."""
    problems = []
    for key, value in overrides.items():
        problem = unknown_override(key, config)
        if problem is None:
            try:
                default = _at(config, key)
            except (KeyError, IndexError, TypeError):  # under an open dict such as arch_params: no default to compare with
                continue
            problem = wrong_type(key, value, default)
        if problem:
            problems.append(problem)
    if problems:
        where = f" of {', '.join(files)}" if files else ""
        raise ConfigError(
            f"invalid override(s){where} (MONAI would fail later on a wrong type, and add an unknown key silently and train "
            "with the defaults; the bundle's docs/README.md lists every key):\n  " + "\n  ".join(problems)
        )


def check_overrides(argv: Sequence[str] | None = None) -> None:
    """Check the overrides of a ``monai.bundle run`` command line (see :func:`check_override_values`); the values are
    read from the running workflow's config, as MONAI parsed them.

    Every bundle config calls this first in ``initialize``, so it is also where a bundle run starts showing a
    :class:`SegzooError` as the last line of ``python -m monai.bundle run`` (:func:`~segzoo.errors.install_excepthook`):
    importing segzoo never changes ``sys.excepthook``."""
    install_excepthook()
    argv = list(sys.argv if argv is None else argv)
    files = _config_files(argv)
    if not files:
        return
    config = ConfigParser.load_config_files(files)
    running = current_bundle_config()
    overrides = {**args_file_values(argv), **cli_override_values(argv)}
    for key in overrides if running is not None else ():
        with contextlib.suppress(KeyError, IndexError, TypeError):
            overrides[key] = _at(running, key)  # as MONAI parsed it
    check_override_values(overrides, config, files)


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
