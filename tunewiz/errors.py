"""The one error type the CLI and the TUI show to a person as a message, not a traceback."""


class TunewizError(Exception):
    """A problem the user can fix; the message says what and where (file, line or key)."""
