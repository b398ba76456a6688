"""The upload readers on their own: what each format becomes, and where bad data is named."""

import numpy as np
import pytest

from ml.datasets import content_sha256, load_canonical, save_canonical
from ml.errors import DataError
from ml.uploads import (
    NotThatFormat,
    UploadError,
    UploadLimits,
    UploadOptions,
    UploadTooLarge,
    parse_options,
    read_upload,
    resolve_format,
)
from ml.uploads.common import CHUNK_CELLS
from tests.datafiles import csv_bytes, iris_csv, npz_bytes, png, shapes_zip, zip_bytes

LIMITS = UploadLimits(max_archive_bytes=1 << 30, max_archive_members=1000,
                      max_image_pixels=1_000_000, max_dataset_bytes=1 << 30)


def read(tmp_path, data: bytes, file_format: str, limits=LIMITS, **options):
    path = tmp_path / "upload"
    path.write_bytes(data)
    return read_upload(path, file_format, UploadOptions(**options), limits, "ds_test")


def test_csv_features_labels_and_names(tmp_path):
    dataset = read(tmp_path, iris_csv(), "csv", target="species")
    assert dataset.x.shape == (150, 4) and dataset.x.dtype == np.float32
    assert dataset.class_names == ["setosa", "versicolor", "virginica"]
    assert dataset.y[[0, 50, 100]].tolist() == [0, 1, 2]
    assert dataset.x[0].tolist() == pytest.approx([5.1, 3.5, 1.4, 0.2])


def test_csv_rows_past_one_chunk_keep_their_order_and_line_numbers(tmp_path):
    rows = CHUNK_CELLS // 3 + 10
    lines = ["a,b,y", *[f"{i},{-i},{i % 2}" for i in range(rows)]]
    dataset = read(tmp_path, csv_bytes(lines), "csv", target="y")
    assert dataset.x[:, 0].tolist() == list(range(rows))
    assert dataset.y.tolist() == [i % 2 for i in range(rows)]
    lines[-1] = f"{rows},oops,1"
    with pytest.raises(UploadError) as error:
        read(tmp_path, csv_bytes(lines), "csv", target="y")
    assert error.value.details[0]["row"] == rows + 1  # the header is row 1


def test_numeric_labels_sort_as_numbers_and_blank_lines_are_skipped(tmp_path):
    dataset = read(tmp_path, csv_bytes(["a,y", "1,10", "", "2,9", "3,10"]), "csv", target="y")
    assert dataset.class_names == ["9", "10"] and dataset.y.tolist() == [1, 0, 1]


def test_a_regression_target_names_the_row_of_a_bad_value(tmp_path):
    with pytest.raises(UploadError, match=r"row 3, column 'y': 'inf' is not a finite number"):
        read(tmp_path, csv_bytes(["a,y", "1,0.5", "2,inf"]), "csv", target="y",
             task="regression")
    with pytest.raises(UploadError, match=r"row 2, column 'y': 'big' is not a number"):
        read(tmp_path, csv_bytes(["a,y", "1,big", "2,3.5"]), "csv", target="y",
             task="regression")


def test_the_header_is_checked(tmp_path):
    with pytest.raises(UploadError, match="column 'a' appears 2 times"):
        read(tmp_path, csv_bytes(["a,a,y", "1,2,3"]), "csv", target="y")
    with pytest.raises(UploadError, match="needs the 'target' field"):
        read(tmp_path, csv_bytes(["a,y", "1,2"]), "csv")


def test_npz_integer_features_and_float_labels(tmp_path):
    dataset = read(tmp_path, npz_bytes(x=np.arange(12).reshape(6, 2),
                                       y=np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])), "npz")
    assert dataset.x.dtype == np.float32 and dataset.kind == "tabular"
    assert dataset.task == "classification" and dataset.class_names == ["0", "1", "2"]
    with pytest.raises(UploadError, match="'y' has 5 samples, 'x' has 6"):
        read(tmp_path, npz_bytes(x=np.zeros((6, 2)), y=np.zeros(5)), "npz")
    with pytest.raises(UploadError, match=r"array 'x' has shape \[6\]"):
        read(tmp_path, npz_bytes(x=np.zeros(6), y=np.zeros(6)), "npz")


def test_images_are_resized_and_converted_to_the_channels_asked(tmp_path):
    dataset = read(tmp_path, shapes_zip(per_class=2), "zip", image_size="3x4", channels="1")
    assert dataset.x.shape == (5, 3, 4, 1) and dataset.class_names == ["blue", "red"]
    assert 0 <= dataset.x.min() and dataset.x.max() <= 255
    grey = zip_bytes({"a/1.png": png(10, mode="L"), "b/1.png": png(200, mode="L")})
    dataset = read(tmp_path, grey, "zip")
    assert dataset.x.shape == (2, 5, 6, 1) and dataset.x[1].max() == 200


def test_macos_metadata_and_hidden_files_are_not_images(tmp_path):
    archive = zip_bytes({"a/1.png": png("red"), "b/1.png": png("blue"),
                         "__MACOSX/a/._1.png": b"resource fork", "a/.DS_Store": b"finder"})
    assert len(read(tmp_path, archive, "zip").x) == 2


def test_archive_limits(tmp_path):
    archive = zip_bytes({f"{c}/{i}.png": png("red") for c in "ab" for i in range(3)})
    few_members = UploadLimits(1 << 30, 5, 1_000_000, 1 << 30)
    with pytest.raises(UploadTooLarge, match="6 members, more than the limit of 5"):
        read(tmp_path, archive, "zip", limits=few_members)
    few_pixels = UploadLimits(1 << 30, 100, 20, 1 << 30)
    with pytest.raises(UploadTooLarge, match="6×5 pixels"):
        read(tmp_path, archive, "zip", limits=few_pixels)


def test_the_format_comes_from_the_field_the_name_or_the_type():
    assert resolve_format(UploadOptions(format="npz"), "a.csv", None) == "npz"
    assert resolve_format(UploadOptions(), "DATA.CSV", None) == "csv"
    assert resolve_format(UploadOptions(), "blob", "application/zip") == "zip"
    with pytest.raises(NotThatFormat):
        resolve_format(UploadOptions(), "../../etc/passwd", None)


def test_options_are_validated_with_the_field_named():
    assert parse_options({"image_size": "28x32"}).image_shape == (28, 32)
    with pytest.raises(UploadError) as error:
        parse_options({"image_size": "28 by 32"})
    assert error.value.details[0]["field"] == "image_size"


def test_the_canonical_file_round_trips_and_is_checked(tmp_path):
    dataset = read(tmp_path, iris_csv(), "csv", target="species")
    path = tmp_path / "store" / f"{dataset.schema['sha256']}.npz"
    save_canonical(dataset, path)
    loaded = load_canonical(path, dataset.schema)
    assert loaded.schema == dataset.schema and np.array_equal(loaded.x, dataset.x)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left
    tampered = {**dataset.schema, "sha256": content_sha256(dataset.x[:10], dataset.y[:10])}
    with pytest.raises(DataError, match="does not match its sha256"):
        load_canonical(path, tampered)


def test_the_content_hash_covers_shapes():
    x = np.zeros((4, 2), np.float32)
    y = np.zeros(4, np.int64)
    assert content_sha256(x, y) != content_sha256(x.reshape(4, 2, 1), y)


def test_an_image_whose_header_reads_but_pixels_do_not_is_named(tmp_path):
    truncated = png("red", size=(64, 64))[:60]
    archive = zip_bytes({"a/1.png": png("red"), "b/1.png": truncated})
    with pytest.raises(UploadError, match="archive member 'b/1.png' does not decode") as error:
        read(tmp_path, archive, "zip")
    assert error.value.details[0]["member"] == "b/1.png"
