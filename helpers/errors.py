"""Errors the study raises on bad input. Each message says what was expected and what to do."""


class StudyError(Exception):
    """Base class: a problem with the user's input or setup, not a bug."""


class ProfileError(StudyError, KeyError):
    """An unknown profile, or a profile/override that does not fit the schema."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(StudyError, ValueError):
    """A data folder or file that is missing, incomplete or malformed."""


class MissingArtifactError(StudyError, FileNotFoundError):
    """An upstream stage has not been run for this profile yet."""
