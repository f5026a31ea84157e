"""Feature Random Enhancement Module (FREM) for an SE U-Net: components of the FREM paper."""
