"""Config checks run before anything is built: the config files themselves, unknown override keys, unknown component
names, and the values a network and its data can take.

MONAI's bundle runner silently adds an override key the config does not have
(``--epoch 5`` trains the default 50 epochs), and fails deep inside a component on a value
that cannot work (a patch the network's stride does not divide, an empty validation split);
these checks stop such a run first, naming the file or key, the value and the fix.
Every config file a user gives (``--config_file``, ``--args_file``, a recipe) is read by :func:`load_config_file`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

import segzoo
from segzoo.bundle.context import current_bundle_config
from segzoo.errors import SegzooError, install_excepthook, raise_on_sigterm
from segzoo.overrides import FALSE_WORDS, NONE_WORDS, TRUE_WORDS, is_none, parse_value
from segzoo.registry import UnknownPresetError

# arguments of ``python -m monai.bundle run`` itself, not config overrides
RUNNER_ARGS = {
    "config_file",
    "meta_file",
    "logging_file",
    "args_file",
    "tracking",
    "run_id",
    "init_id",
    "final_id",
    "workflow_type",
}


class ConfigError(SegzooError, ValueError):
    """A bundle config or override names something that does not exist."""


def load_config_file(path: str | Path, required: Sequence[str] = ()) -> dict[str, Any]:
    """The object in the config file ``path`` (JSON, or YAML by its suffix); a missing file, a syntax error (with its
    line and column), a file that holds no object, or one that lacks a key of ``required`` is a :class:`ConfigError`
    naming the file."""
    path = Path(path)
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {state}; pass the path of a .json (or .yaml) file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} cannot be read as text ({type(exc).__name__}: {exc}); pass a UTF-8 .json file"
        ) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(
                f"config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}; fix it there"
            ) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            state = "is empty" if not text.strip() else f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            raise ConfigError(
                f"config file {path} {state}; fix it there (a truncated copy? compare it with the bundle's own)"
            ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} holds a {type(data).__name__}, not an object; a config file holds one "
                          '{"key": value, ...} object')
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"config file {path} lacks the required key(s) {', '.join(map(repr, missing))}; add them")
    return data


def load_config_files(files: Sequence[str | Path]) -> dict[str, Any]:
    """``files`` merged in order as MONAI merges a ``--config_file`` list, each first read by :func:`load_config_file`."""
    for path in files:
        load_config_file(path)
    return ConfigParser.load_config_files([str(path) for path in files])


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
    path = _runner_arg(argv, "args_file")
    if path is None:
        return {}
    return {k: v for k, v in load_config_file(path).items() if k not in RUNNER_ARGS}


def _runner_arg(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` on a command line, if given."""
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _config_files(argv: Sequence[str]) -> list[str]:
    value = _runner_arg(argv, "config_file")
    if value is None:
        return []
    value = value.strip()
    return [v.strip(" '\"") for v in value.strip("[]").split(",")] if value.startswith("[") else [value]


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
        ok = isinstance(value, bool) or (
            isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS + NONE_WORDS
        )
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = expected is None or isinstance(value, type(default))
    if not ok:
        return (f"--{key} {value!r}: expects {expected} like its default {default!r}, got {type(value).__name__}. "
                f"Pass e.g. --{key} {json_like(default)}")
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0 and value < 0:
        return f"--{key} {value!r}: cannot be negative (its default is {default!r}). Pass a value of 0 or more."
    return None


def json_like(value: Any) -> str:
    """How a value is written after ``--key`` on a command line."""
    return (
        "true"
        if value is True
        else "false"
        if value is False
        else value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"))
    )


def check_override_values(overrides: dict[str, Any], config: dict[str, Any], files: Sequence[str] = (),
                          types: dict[str, Any] | None = None) -> None:
    """Refuse overrides that name no key of ``config`` (typos would train with the defaults) or give a value of another
    type than the key's default; each problem names the key, the value and the fix, all in one error.

    ``types`` (the bundle's own config, before recipes were merged over it) gives a key's type where it holds the key,
    so a recipe that set ``epochs`` to the text "two" does not make ``--epochs 1`` invalid.
    """
    problems = []
    for key, value in overrides.items():
        problem = unknown_override(key, config)
        if problem is None:
            try:
                default = _at(config, key)
            except (KeyError, IndexError, TypeError):  # under an open dict such as arch_params: no default to compare with
                continue
            with contextlib.suppress(KeyError, IndexError, TypeError):
                default = _at(types, key) if types is not None else default
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
    importing segzoo never changes ``sys.excepthook``. It also starts raising SIGTERM as
    :class:`~segzoo.errors.Terminated` (:func:`~segzoo.errors.raise_on_sigterm`), so a stop in any later phase closes
    the open MLflow runs as KILLED."""
    install_excepthook()
    raise_on_sigterm()
    argv = list(sys.argv if argv is None else argv)
    files = _config_files(argv)
    if not files:
        return
    config = load_config_files(files)
    running = current_bundle_config()
    overrides = {**args_file_values(argv), **cli_override_values(argv)}
    for key in overrides if running is not None else ():
        with contextlib.suppress(KeyError, IndexError, TypeError):
            overrides[key] = _at(running, key)  # as MONAI parsed it
    check_override_values(overrides, config, files, types=load_config_file(files[0]))


def check_overlay(workflow: str, argv: Sequence[str] | None = None) -> None:
    """``evaluate.json`` and ``inference.json`` are overlays over ``train.json`` (the network comes from the run, every
    other value from training's keys): run alone, refuse with the two-file command instead of MONAI's missing-reference
    error; refuse ``--output_dir`` (training's key, which the overlay does not read), naming the overlay's own."""
    from segzoo.bundle.context import current_bundle_config

    argv = list(sys.argv if argv is None else argv)
    if "output_dir" in cli_override_values(argv):  # training's run folder in the merged config: it would be ignored
        own = "evaluation_dir" if workflow == "evaluating" else "predictions_dir"
        raise ConfigError(f"--output_dir is the training's run folder; {workflow} writes to --{own}: pass --{own} DIR")
    running = current_bundle_config()
    if running is None or "train" in running:
        return
    files = _config_files(argv)
    overlay = Path(files[-1]) if files else Path(f"configs/{'evaluate' if workflow == 'evaluating' else 'inference'}.json")
    base = overlay.with_name("train.json")
    raise ConfigError(f"{overlay} is an overlay over {base}, not a whole config; merge it over {base}: "
                      f"python -m monai.bundle run {workflow} --config_file \"['{base}','{overlay}']\"")


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
    except UnknownPresetError as err:  # the preset is wrong, not the parameters
        raise ConfigError(f"config key 'preset' = {preset!r}: {str(err).strip(chr(34) + chr(39))}") from None
    except SegzooError as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def check_training_values(train_items: Sequence[dict[str, Any]], val_items: Sequence[dict[str, Any]], val_fraction: Any,
                          batch_size: int, epochs: int, patch_size: Sequence[int] | None = None) -> None:
    """Refuse values a training cannot use before it builds anything, and print the split it trains on.

    ``batch_size`` and ``epochs`` of at least 1 (0 epochs would "finish" without a model), ``0 < val_fraction < 1``, a
    split (as the bundle made it) with items on both sides, and a note where the split's rounding or an image smaller
    than ``patch_size`` changes what was asked.
    """
    for key, value in (("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"--{key} {value}: must be 1 or more (0 trains nothing and leaves no model). Pass e.g. --{key} 2")
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0 < val_fraction < 1:
        raise ConfigError(f"--val_fraction {val_fraction!r}: must be a fraction strictly between 0 and 1 (some data to train on, "
                          "some to validate on). Pass e.g. --val_fraction 0.2")
    total, n_val = len(train_items) + len(val_items), len(val_items)
    if not train_items or not val_items:
        raise ConfigError(f"the data set holds {total} item(s), split into {len(train_items)} training and {n_val} validation; "
                          "a training needs at least one of each. Add images, or use the synthetic data (--dataset_dir null)")
    asked = total * val_fraction
    rounded = (
        f" (val_fraction {val_fraction} of {total} items is {asked:g}; kept within 1..{total - 1})"
        if round(asked) != n_val
        else ""
    )
    print(f"split: {total} items -> {len(train_items)} training, {n_val} validation{rounded}")
    small = [str(item.get("name", "?")) for item in [*train_items, *val_items]
             if patch_size and any(s < p for s, p in zip(getattr(item.get("image"), "shape", ())[1:], patch_size))]
    if small:
        print(f"note: {len(small)} image(s) smaller than patch_size {list(patch_size or [])} are "
              f"zero-padded to it, e.g. {small[0]}")


def check_patch_size(arch: str, preset: str | None, patch_size: Any, **params: Any) -> None:
    """Refuse a ``patch_size`` the network cannot take (wrong number of dimensions, not a multiple of its stride),
    found by running the network on shapes alone (PyTorch's ``meta`` device: no weights, no compute)."""
    import torch

    if (not isinstance(patch_size, (list, tuple)) or len(patch_size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in patch_size)):
        raise ConfigError(f"--patch_size {patch_size!r}: segzoo trains on 2D images, so a patch is two positive whole numbers "
                          "(height, width). Pass e.g. --patch_size [128,128]")
    try:
        with torch.device("meta"):
            network = segzoo.get("architecture", arch).build(preset, **params)
            network(torch.empty(1, int(params.get("in_channels", 1)), *patch_size))
    except NotImplementedError:  # an operation without a shape-only version: the network is checked by training instead
        return
    except (ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"--patch_size {list(patch_size)}: the network {arch} cannot take a patch of this size ({reason}). "
                          "Pass a --patch_size it can take") from None
