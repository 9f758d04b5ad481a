"""The one exception type for problems a user can fix (bad input, missing files, bad config).

Its message is shown as a single line; it should say what was wrong and how to fix it.
"""


class UserError(Exception):
    """A problem with the input or set-up that the user can fix; the message says how."""


class ArtifactError(UserError):
    """Model artifacts are missing, incomplete or inconsistent with each other."""
