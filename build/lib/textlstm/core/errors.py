"""Errors a user can cause. The CLI turns them into one line on stderr and exit code 2."""


class UserError(Exception):
    """A mistake in the user's config, data, checkpoint or input.

    The message is one sentence naming the thing and the fix; it is printed as-is, with no
    traceback, by `textlstm.cli.main`.
    """

    exit_code = 2

    def __init__(self, message: str = ""):
        # raised in a DataLoader worker, torch re-raises it in the main process as
        # UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback ...");
        # keep only the sentence the worker raised
        if message.startswith("Caught UserError") and "UserError: " in message:
            message = message.rsplit("UserError: ", 1)[1].strip()
        super().__init__(message)
