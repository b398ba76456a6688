"""What every upload shares: its options, the limits it is read under, and the errors that name
the place of bad data."""

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml.errors import DataError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# A numeric target with at most this many distinct integer values is read as class labels.
MAX_INFERRED_CLASSES = 20
MAX_CLASSES = 1000
# Cells converted at once: bounds the memory of parsing, whatever the file's size.
CHUNK_CELLS = 65_536
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
FORMAT_BY_SUFFIX = {".csv": "csv", ".npz": "npz", ".zip": "zip", ".tar": "tar", ".tgz": "tar",
                    ".gz": "tar"}
FORMAT_BY_CONTENT_TYPE = {"text/csv": "csv", "application/zip": "zip",
                          "application/x-zip-compressed": "zip", "application/x-tar": "tar",
                          "application/gzip": "tar", "application/x-gzip": "tar"}
# No image file of the allowed pixels is larger than this many bytes a pixel (16-bit RGBA, the
# widest pixels a common format stores uncompressed) plus room for the metadata beside them
# (EXIF, ICC profiles): the cap on what an archive member may expand to.
MAX_BYTES_PER_PIXEL = 8
IMAGE_METADATA_BYTES = 1 << 20


class UploadError(DataError):
    """The file cannot become a dataset; `details` name the place (row, column, member)."""

    def __init__(self, message: str, field: str = "file", value: Any = None, **place: Any):
        super().__init__(message)
        self.details = [{"field": field, "value": value, **place}]


class NotThatFormat(UploadError):
    """The file is not the format it claims, or not one of the formats read at all."""


class UploadTooLarge(UploadError):
    """An archive or the arrays it makes exceed a configured limit."""


@dataclass(frozen=True)
class UploadLimits:
    max_archive_bytes: int
    max_archive_members: int
    max_image_pixels: int
    max_dataset_bytes: int

    @property
    def max_member_bytes(self) -> int:
        """What one image in an archive may expand to."""
        return self.max_image_pixels * MAX_BYTES_PER_PIXEL + IMAGE_METADATA_BYTES


ImageSize = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")]


class UploadOptions(BaseModel):
    """The form fields sent beside the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "zip": image folders, or IDX / CIFAR files (told by their names); "tar": IDX / CIFAR
    format: Literal["csv", "npz", "zip", "tar", "idx", "cifar"] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=1000)] = ""
    target: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    task: Literal["classification", "regression"] | None = None
    image_size: ImageSize | None = None  # "HEIGHTxWIDTH"
    channels: Literal["1", "3"] | None = None

    @property
    def image_shape(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        height, width = self.image_size.split("x")
        return int(height), int(width)


def parse_options(fields: dict[str, str]) -> UploadOptions:
    try:
        return UploadOptions.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "form"
        if error["type"] == "extra_forbidden":
            message = (f"unknown field '{field}'; the fields are: file, "
                       f"{', '.join(UploadOptions.model_fields)}")
        else:
            message = f"{field}: {error['msg'][0].lower()}{error['msg'][1:]}"
        raise UploadError(message, field=field, value=error.get("input")) from None


def resolve_format(options: UploadOptions, filename: str | None,
                   content_type: str | None) -> str:
    """The format asked for: the `format` field, else the file's suffix, else its type."""
    if options.format:
        return options.format
    suffix = PurePosixPath(filename or "").suffix.lower()  # compared only, never a path
    found = FORMAT_BY_SUFFIX.get(suffix) or FORMAT_BY_CONTENT_TYPE.get(content_type or "")
    if found is None:
        raise NotThatFormat(f"cannot tell the format of '{filename}': send a .csv, .npz, .zip "
                            "or .tar(.gz) file, or name it in the 'format' field", field="format",
                            value=filename)
    return found
