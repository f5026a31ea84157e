"""The recorded rule's sliding window: a large image shows its progress over windows, a small one stays quiet."""

from __future__ import annotations

import pytest
import torch

from segzoo.processing import Processing


def test_the_window_count_is_the_sliding_windows_per_image() -> None:
    rule = Processing(roi_size=[64, 64], overlap=0.25)
    assert rule.windows((64, 64)) == 1
    assert rule.windows((70, 90)) == 2 * 2  # 64 + 48 covers 70 and 90
    assert rule.windows((4096, 4096)) == 85 * 85


def test_an_image_of_many_windows_shows_a_bar_over_its_windows(capsys: pytest.CaptureFixture[str]) -> None:
    rule = Processing(roi_size=[16, 16], overlap=0.0, sw_batch_size=1, blend="constant")
    infer = rule.inferer(progress_above=4)
    identity = torch.nn.Identity()
    small, large = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 64, 64)  # 4 and 16 windows
    assert torch.equal(infer(small, identity), small)
    assert "16/16" not in capsys.readouterr().err
    assert torch.equal(infer(large, identity), large)
    assert "16/16" in capsys.readouterr().err
