"""The range of every number a user can give facefind, in one place.

The library checks each value here before doing any work, so the CLI (which passes values on
unchanged), scripts and the web API all refuse the same values for the same reason. A refusal
(OutOfRange) names the value as the library and the API do (`top_k 0: ...`); the CLI words it
with its flag (`--top-k 0: ...`, `cli_message`).
Ranges are generous: their job is to stop typos and hostile values (a top-k of 10^20 once asked
for 24 GB), not to second-guess an operator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidValue

Number = TypeVar("Number", int, float)

# Ids are SQL BIGINTs: a larger number cannot name anything (and SQLite would overflow on it).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Limit:
    option: str  # the CLI's flag (--top-k) or the environment variable that sets the value
    low: float
    high: float
    above_low: bool = False  # low itself is excluded
    below_high: bool = False  # high itself is excluded
    example: str = ""
    name: str = ""  # the parameter of the library and the field of the API (top_k); else `option`

    @property
    def called(self) -> str:
        return self.name or self.option

    def check(self, value: Number) -> Number:
        """`value` unchanged if it lies in range, else OutOfRange naming the range."""
        if (isinstance(value, float) and not math.isfinite(value)) or not self.contains(value):
            raise OutOfRange(self, value)
        return value

    def contains(self, value: float) -> bool:
        above = value > self.low if self.above_low else value >= self.low
        below = value < self.high if self.below_high else value <= self.high
        return above and below

    def wanted(self) -> str:
        low, high = _number(self.low), _number(self.high)
        span = {
            (False, False): f"from {low} to {high}",
            (True, False): f"above {low}, up to {high}",
            (False, True): f"from {low}, below {high}",
            (True, True): f"above {low} and below {high}",
        }[self.above_low, self.below_high]
        return f"give a number {span}" + (f" (e.g. {self.example})" if self.example else "")


class OutOfRange(InvalidValue):
    """A value outside its Limit: `str()` names it as the library and the API do (`top_k 0`)."""

    def __init__(self, limit: Limit, value: float) -> None:
        super().__init__(f"{limit.called} {value}: {limit.wanted()}")
        self.limit, self.value = limit, value

    def cli_message(self) -> str:
        """The same refusal naming the CLI's flag (`--top-k 0`)."""
        return f"{self.limit.option} {self.value}: {self.limit.wanted()}"


def cli_message(err: Exception) -> str:
    """An error's message as the CLI prints it: out-of-range values named by their flags."""
    return err.cli_message() if isinstance(err, OutOfRange) else str(err)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


TOP_K = Limit("--top-k", 1, 10_000, example="10", name="top_k")
FACE = Limit("--face", 0, 10_000, example="0 for the largest face", name="face")
PHOTOS = Limit("query photos", 1, 10, example="2 to 4 photos of one person", name="photos")
WORKERS = Limit("--workers", 1, 256, example="the number of cores", name="workers")
THRESHOLD = Limit("--threshold", -1, 1, example="0.4; a cosine similarity", name="threshold")
MAX_FMR = Limit("--max-fmr", 0, 1, above_low=True, example="0.0001", name="max_fmr")
MAX_FPIR = Limit("--max-fpir", 0, 1, above_low=True, below_high=True, example="0.01", name="max_fpir")
RETENTION_DAYS = Limit(
    "--retention", 1, 100 * 365, example="5y; past 100 years dates overflow", name="retention"
)
DESTROY_AFTER_DAYS = Limit(
    "--destroy-after-last-use", 1, 100 * 365, example="1095; BIPA asks for at most 3 years", name="days"
)
CONFIRMATIONS = Limit("--confirmations", 1, 10, example="2; 1 needs --allow-single-confirmation")
MODEL_INPUT = Limit("--input", 16, 1024, example="112", name="input_size")
MODEL_MEAN = Limit("--mean", -1e6, 1e6, example="127.5", name="mean")
MODEL_STD = Limit("--std", 0, 1e6, above_low=True, example="127.5", name="std")
CROP_PX = Limit("size", 16, 1024, example="160 pixels")
PHOTO_PX = Limit("size", 64, 4096, example="1600 pixels")
RATE_LIMIT = Limit(
    "--rate-limit", 0, 1_000_000, example="600 requests a minute; 0 for none", name="rate_limit"
)
MAX_JOBS = Limit("--max-jobs", 1, 64, example="1: index jobs run one at a time", name="max_jobs")
MAX_JOBS_PER_KEY = Limit("--max-jobs-per-key", 1, 64, example="1", name="max_jobs_per_key")
MAX_QUEUED_PER_KEY = Limit("--max-queued-per-key", 1, 1_000, example="10", name="max_queued_per_key")
MAX_PIXELS = Limit("FACEFIND_MAX_PIXELS", 1_000_000, 4_000_000_000, example="200000000 for 200 MP photos")
MAX_UPLOAD_PIXELS = Limit(
    "FACEFIND_MAX_UPLOAD_PIXELS", 1_000_000, 4_000_000_000, example="50000000 for 50 MP query photos"
)
MAX_FILE_BYTES = Limit("FACEFIND_MAX_FILE_BYTES", 2**20, 2**36, example="1073741824 for 1 GiB")
OFFSET = Limit("offset", 0, MAX_ID, example="0 for the first page")
PAGE = Limit("limit", 1, 10_000, example="100 a page")
MIN_TEMPLATE_PX = Limit("PX", 0, 4096, example="24; 0 keeps a template for every face", name="px")


def is_id(value: int) -> bool:
    """Whether `value` could be the id of anything stored (a larger one names nothing)."""
    return 1 <= value <= MAX_ID
