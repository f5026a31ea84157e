"""What ``segzoo compare`` and ``segzoo reproduce`` share: a resumable state file checked against the settings.

Each study writes its progress to one JSON file in its output folder after every finished step (atomically, so
an interruption never leaves half a state), and a rerun with the same output folder resumes from it. A rerun
with other settings is refused, naming the settings that differ, because its models would not be comparable
with the ones already trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segzoo.errors import SegzooError
from segzoo.files import atomic_write_json, read_json


def load_state(path: Path, settings: dict[str, Any], what: str, fresh: dict[str, Any]) -> dict[str, Any]:
    """The state at ``path`` if its settings equal ``settings``, else ``{"settings": settings, **fresh}`` when there is none."""
    settings = json.loads(json.dumps(settings))  # as read back from the file (tuples become lists)
    if not path.exists():
        return {"settings": settings, **fresh}
    state = read_json(path, f"the {what}'s progress", f"Delete it to start the {what} over, or pass another --output.")
    if state.get("settings") != settings:
        before = state.get("settings", {})
        differ = sorted(k for k in {*settings, *before} if before.get(k) != settings.get(k))
        was = ", ".join(f"{k}={before.get(k)!r}" for k in differ)
        raise SegzooError(f"{path} holds a {what} with other {', '.join(differ)} ({was}); its models would not "
                          f"be comparable with these. Rerun with the same options to resume it, or pass another --output.")
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Written atomically after each step, so an interruption never leaves a half-written state."""
    atomic_write_json(path, state, indent=2)


def seed_list(seeds: int) -> list[int]:
    """The training seeds of ``--seeds N``: 0 .. N-1 (seed 0 is the bundles' default, so one seed is the plain run)."""
    if seeds < 1:
        raise SegzooError(f"--seeds {seeds}: pass at least 1 (each seed trains every row once more)")
    return list(range(seeds))
