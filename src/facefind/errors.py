"""Errors a user can cause. Each says what went wrong and what to do about it."""


class FacefindError(Exception):
    """Base class: `str(err)` is a complete message meant for the user."""

    exit_code = 1


class NotFound(FacefindError):
    """No such person, photo, collection, consent, opt-out, key or job."""


class Refused(FacefindError):
    """Not allowed: the role does not permit it, or a consent or policy forbids it."""


class Conflict(FacefindError):
    """It clashes with what is stored (a name in use, a consent already withdrawn)."""


class Unavailable(FacefindError):
    """Cannot be done right now (busy, rate-limited, a model or database missing)."""


class TooManyRequests(FacefindError):
    """A key made more requests in a minute than the service allows (`facefind serve --rate-limit`)."""


class InvalidValue(FacefindError):
    """A number or option value outside what facefind accepts (the ranges are in limits.py)."""


class ImageError(FacefindError):
    """A file or buffer that cannot be used as a photo."""


class TooLarge(ImageError):
    """A photo over the file size or pixel limit (settings.py says how to raise them)."""


class NoFaceError(FacefindError):
    """A photo in which no face was found where one was needed."""


class ModelUnavailable(FacefindError):
    """A model file could not be found, downloaded or verified."""


class CatalogError(FacefindError):
    """The catalog database cannot be opened or used."""


class CalibrationError(FacefindError):
    """A threshold or false-match rate the calibration table cannot support."""


class RecognizerError(FacefindError):
    """A recognizer that cannot be registered, switched to or removed."""
