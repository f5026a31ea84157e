"""Values typed on a command line: the one parser of ``KEY=VALUE`` overrides, switches and "no value" words.

``segzoo compare``/``tune``/``reproduce`` take ``--override KEY=VALUE``; ``python -m monai.bundle run`` passes
``--resume false`` to a config as the text "false"; a preset can be given as ``none``. All of them read text the
same way here, so ``true``, ``[64,64]`` and ``none`` mean one thing everywhere.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from typing import Any

from segzoo.errors import SegzooError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NONE_WORDS = ("", "none", "null")


def parse_value(text: str) -> Any:
    """``text`` as JSON (``[64,64]``, ``2``, ``true``, ``null``), else as a Python literal (``None``,
    ``{'base_channels': 8}``), else the text itself (``/data/isbi2012``, ``frem``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``KEY`` as in ``--KEY``, nested keys as ``a#b``) -> ``(KEY, typed VALUE)``."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not key:
        raise SegzooError(f"--override expects KEY=VALUE (e.g. patch_size=[64,64] or train_hook=frem), got '{text}'")
    return key, parse_value(value)


def parse_overrides(texts: Iterable[str]) -> dict[str, Any]:
    """Several ``KEY=VALUE`` texts as one override dict (a later key wins)."""
    return dict(parse_override(text) for text in texts)


def is_none(value: Any) -> bool:
    """Whether ``value`` means "no value": None, or text such as ``none``/``null`` from a command line."""
    return value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)


def as_flag(value: bool | str | int | None, key: str = "flag") -> bool:
    """A config switch given as a bool or as command-line text (``--resume false`` arrives as the string "false")."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS or is_none(text):
            return False
        raise SegzooError(f"--{key} expects true or false, got {value!r}")
    return bool(value)
