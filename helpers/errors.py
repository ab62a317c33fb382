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


class SemanticIdConfigError(StudyError, ValueError):
    """A Semantic-ID setting that cannot work: an unknown quantizer or scheme, a codebook too large."""


class EmbeddingMatrixError(DataError):
    """An item-embedding matrix with the wrong shape, item order, or non-finite values."""


class InvalidIdError(StudyError, AssertionError):
    """A decoder returned something that is not a valid, distinct catalogue item."""


class NotebookFailed(StudyError):
    """A notebook of the study failed; the message names the notebook and the cell."""
