"""The errors a user can cause: each message names the key, or the file, row and field."""


class ConfigError(ValueError):
    """A config file or override is unusable; the message names the key."""


class InputError(ValueError):
    """Unusable input data; the message names the file, row and field."""
