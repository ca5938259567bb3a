"""One exception type for mistakes a user can fix (bad params, bad data, missing files).

The CLI prints its message and exits with status 2, without a traceback; anything else is a
bug in the template and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input, described well enough to fix without reading code."""
