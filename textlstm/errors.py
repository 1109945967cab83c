"""Errors a user can cause. The CLI turns them into one line on stderr and exit code 2."""


class UserError(Exception):
    """A mistake in the user's config, data, checkpoint or input.

    The message is one sentence naming the thing and the fix; it is printed as-is, with no
    traceback, by `textlstm.cli.main`.
    """

    exit_code = 2
