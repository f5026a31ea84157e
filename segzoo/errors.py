"""The base of every error a user can fix by changing a config, an override or an install."""


class SegzooError(Exception):
    """Base class of the errors a user can fix by changing a config or an install; the message names the fix."""
