"""Baseline architectures the papers compare against (U-Net, UNet++, Attention U-Net, ResNet34-UNet, FCN-8s)."""
