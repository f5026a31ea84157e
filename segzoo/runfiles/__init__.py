"""Run files: every read and write of a run folder (:mod:`segzoo.runfiles.store`), who writes them
(:func:`~segzoo.runfiles.store.is_main_process`), and the trained-network loader (:mod:`segzoo.runfiles.network`).
``load_checkpoint`` is part of the plugin API (docs/writing-a-plugin.md)."""

from segzoo.runfiles.network import load_checkpoint

__all__ = ["load_checkpoint"]
