"""MultiResUNet (Ibtehaz & Rahman, Neural Networks 2020) as a segzoo plugin: architecture ``multiresunet``."""

from segzoo_multiresunet.multiresunet import MultiResBlock, MultiResUNet, ResPath

__all__ = ["MultiResBlock", "MultiResUNet", "ResPath"]
