"""Errors a user can cause and fix. The CLI prints them as one line (exit 2); the UI shows them."""


class DeconfoundError(Exception):
    """A problem with the user's input or request: the message says what was wrong and what to do."""


class IngestError(DeconfoundError):
    """A file could not be loaded into the database."""


class RolesError(DeconfoundError):
    """Column roles are missing or inconsistent; `problems` lists every message."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class NotFoundError(DeconfoundError):
    """A table, column, run or job that does not exist."""
