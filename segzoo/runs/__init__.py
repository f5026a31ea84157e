"""Run files: every read and write of a run folder (:mod:`segzoo.runs.store`), who writes them
(:func:`~segzoo.runs.store.is_main_process`), and the trained-network loader (:mod:`segzoo.runs.network`).
``load_checkpoint`` is part of the plugin API (docs/writing-a-plugin.md)."""

from segzoo.runs.network import load_checkpoint

__all__ = ["load_checkpoint"]
