"""The one exception type that turns bad configuration into a one-line, non-zero exit."""


class ConfigError(ValueError):
    """Bad user input. The message names the config key and what is allowed.

    The entry points catch it, print ``error: <message>`` on one line, record the failure in
    ``metrics.json`` and exit with status 2.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")
