"""Upload files built in memory for the dataset tests: CSV, NPZ, image ZIPs, bad ones."""

import io
import zipfile

import numpy as np
from PIL import Image

from ml.datasets import load_builtin

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]


def iris_csv() -> bytes:
    """Iris as a student would export it: a header, four numbers and a species name per row."""
    iris = load_builtin("builtin:iris")
    lines = [",".join(IRIS_COLUMNS)]
    for features, label in zip(iris.x, iris.y, strict=True):
        values = ",".join(f"{value:g}" for value in features)
        lines.append(f"{values},{iris.class_names[label]}")
    return ("\n".join(lines) + "\n").encode()


def csv_bytes(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def png(colour, size=(6, 5), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            archive.writestr(info, "../../etc/passwd")
    return buffer.getvalue()


def shapes_zip(per_class: int = 12) -> bytes:
    """Two classes of 6×5 colour images inside one wrapping folder, one odd-sized image."""
    members = {}
    for index in range(per_class):
        members[f"shapes/red/{index:02d}.png"] = png((200 + index, 10, 10))
        members[f"shapes/blue/{index:02d}.png"] = png((10, 10, 200 + index))
    members["shapes/blue/big.png"] = png((0, 0, 255), size=(12, 10))
    return zip_bytes(members)


def multipart(filename: str, data: bytes, fields: dict[str, str] | None = None,
              boundary: str = "capas-test-boundary") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand, for requests httpx would not send."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             .encode() for name, value in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
