"""The classic datasets as their own files: IDX (MNIST and its kin) and CIFAR-10/100 binary
batches, in a ZIP or a tar archive, gzipped or not, made small here; their test files stay the
test split, over HTTP and in training."""

import gzip
import io
import struct
import tarfile

import numpy as np
import pytest

from core.services.training import TrainingService
from ml.datasets import split, split_record
from ml.uploads import NotThatFormat, UploadError, UploadTooLarge, resolve_format
from ml.uploads.common import UploadOptions
from tests.datafiles import zip_bytes
from tests.unit.test_uploads import LIMITS, read

RNG = np.random.default_rng(0)


def idx(array: np.ndarray) -> bytes:
    """An IDX file: two zero bytes, the type code of unsigned bytes, the axes, the sizes."""
    return (b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.astype(np.uint8).tobytes())


def mnist_like(train: int = 30, test: int = 10, side: int = 28, prefix: str = "",
               gz: bool = True) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    arrays = {"train_x": RNG.integers(0, 256, (train, side, side)),
              "train_y": np.arange(train) % 10, "test_x": RNG.integers(0, 256, (test, side, side)),
              "test_y": np.arange(test) % 10}
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    files = {f"{prefix}train-images-idx3-ubyte{suffix}": pack(idx(arrays["train_x"])),
             f"{prefix}train-labels-idx1-ubyte{suffix}": pack(idx(arrays["train_y"])),
             f"{prefix}t10k-images-idx3-ubyte{suffix}": pack(idx(arrays["test_x"])),
             f"{prefix}t10k-labels-idx1-ubyte{suffix}": pack(idx(arrays["test_y"]))}
    return files, arrays


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_records(images: np.ndarray, *labels: np.ndarray) -> bytes:
    """Each record: its labels, then the image channel by channel, row by row."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.column_stack([*labels, planes]).astype(np.uint8).tobytes()


def test_mnist_idx_files_in_a_zip_keep_their_test_split(tmp_path):
    files, arrays = mnist_like()
    dataset = read(tmp_path, zip_bytes({f"mnist/{k}": v for k, v in files.items()}), "zip")
    assert dataset.x.shape == (40, 28, 28, 1) and dataset.x.dtype == np.float32
    assert dataset.x[:30, ..., 0].tolist() == arrays["train_x"].tolist()
    assert dataset.x[30:, ..., 0].tolist() == arrays["test_x"].tolist()
    assert dataset.class_names == [str(d) for d in range(10)]
    assert dataset.y.tolist() == [*arrays["train_y"], *arrays["test_y"]]
    assert dataset.kind == "image" and dataset.schema["test_samples"] == 10
    drawn = split(dataset, seed=3, validation_split=0.4)
    assert drawn.test.tolist() == list(range(30, 40))
    assert len(drawn.train) + len(drawn.validation) == 30
    assert set(drawn.validation) <= set(range(30))
    record = split_record(dataset.schema, 3, 0.4)
    assert record["test_from_data"] is True and record["test"] == 10
    assert (record["validation"], record["train"]) == (12, 18) == (len(drawn.validation),
                                                                   len(drawn.train))


def test_idx_files_in_a_tar_gz_ungzipped_and_with_emnist_upright(tmp_path):
    files, arrays = mnist_like(gz=False, prefix="emnist-digits-")
    dataset = read(tmp_path, tar_bytes(files), resolve_format(UploadOptions(), "emnist.tar.gz",
                                                              None))
    # EMNIST stores its images transposed; they come out upright
    assert dataset.x[0, ..., 0].tolist() == arrays["train_x"][0].T.tolist()
    assert dataset.schema["test_samples"] == 10


def test_labels_that_skip_values_become_the_classes_that_occur(tmp_path):
    files, _ = mnist_like(train=20, test=0, side=4)
    letters = np.arange(20) % 4 + 1  # EMNIST letters: 1 to 26, no 0
    files = {"train-images-idx3-ubyte.gz": files["train-images-idx3-ubyte.gz"],
             "train-labels-idx1-ubyte.gz": gzip.compress(idx(letters))}
    dataset = read(tmp_path, zip_bytes(files), "zip")
    assert dataset.class_names == ["1", "2", "3", "4"] and dataset.y[:4].tolist() == [0, 1, 2, 3]
    assert "test_samples" not in dataset.schema  # no test files: the seeded 20%


def test_cifar10_batches_with_their_names(tmp_path):
    images = RNG.integers(0, 256, (25, 32, 32, 3))
    labels = np.arange(25) % 5
    names = "airplane\nautomobile\nbird\ncat\ndeer\n\n"
    members = {"cifar-10-batches-bin/data_batch_2.bin": cifar_records(images[10:20], labels[10:20]),
               "cifar-10-batches-bin/data_batch_1.bin": cifar_records(images[:10], labels[:10]),
               "cifar-10-batches-bin/test_batch.bin": cifar_records(images[20:], labels[20:]),
               "cifar-10-batches-bin/batches.meta.txt": names.encode(),
               "cifar-10-batches-bin/readme.html": b"<html>"}
    dataset = read(tmp_path, tar_bytes(members), "tar")
    assert dataset.x.shape == (25, 32, 32, 3)
    assert dataset.x.tolist() == images.tolist()  # batches in their order, pixels in place
    assert dataset.class_names == ["airplane", "automobile", "bird", "cat", "deer"]
    assert dataset.y.tolist() == labels.tolist() and dataset.schema["test_samples"] == 5


def test_cifar100_fine_or_coarse_labels(tmp_path):
    images = RNG.integers(0, 256, (6, 32, 32, 3))
    coarse, fine = np.array([0, 1, 0, 1, 0, 1]), np.array([0, 1, 2, 3, 4, 5])
    members = {"train.bin": cifar_records(images[:4], coarse[:4], fine[:4]),
               "test.bin": cifar_records(images[4:], coarse[4:], fine[4:]),
               "coarse_label_names.txt": b"animals\nplants\n",
               "fine_label_names.txt": b"a\nb\nc\nd\ne\nf\n"}
    archive = zip_bytes(members)
    fine_set = read(tmp_path, archive, "zip")
    assert fine_set.class_names == list("abcdef") and fine_set.y.tolist() == fine.tolist()
    coarse_set = read(tmp_path, archive, "cifar", target="coarse")
    assert coarse_set.class_names == ["animals", "plants"]
    assert coarse_set.y.tolist() == coarse.tolist()
    assert coarse_set.x.tolist() == images.tolist() and coarse_set.schema["test_samples"] == 2
    with pytest.raises(UploadError, match="target: CIFAR-100 has 'fine' and 'coarse' labels, "
                                          "received 'species'"):
        read(tmp_path, archive, "zip", target="species")


def test_bad_classic_files_are_named(tmp_path):
    files, _ = mnist_like(train=10, test=5, side=4, gz=False)
    cut = dict(files, **{"train-images-idx3-ubyte": files["train-images-idx3-ubyte"][:-3]})
    with pytest.raises(UploadError, match=r"archive member 'train-images-idx3-ubyte': its header "
                                          r"says 10×4×4 values \(160 bytes\), the file holds 157"):
        read(tmp_path, zip_bytes(cut), "zip")
    fewer = dict(files, **{"t10k-labels-idx1-ubyte": idx(np.arange(4))})
    with pytest.raises(UploadError, match=r"'t10k-labels-idx1-ubyte' holds labels of shape "
                                          r"\[4\]; \[5\] expected"):
        read(tmp_path, zip_bytes(fewer), "zip")
    no_labels = {k: v for k, v in files.items() if k != "train-labels-idx1-ubyte"}
    with pytest.raises(UploadError, match="the archive has no train labels"):
        read(tmp_path, zip_bytes(no_labels), "zip")
    twice = dict(files, **{"other/train-images-idx3-ubyte": files["train-images-idx3-ubyte"]})
    with pytest.raises(UploadError, match="the archive holds 2 files of train images"):
        read(tmp_path, tar_bytes(twice, "w"), "tar")
    not_idx = dict(files, **{"train-images-idx3-ubyte": b"PK\x03\x04 not idx"})
    with pytest.raises(UploadError, match="'train-images-idx3-ubyte' is not an IDX file"):
        read(tmp_path, zip_bytes(not_idx), "idx")
    with pytest.raises(UploadError, match="holds 3000 bytes, not whole records of 3073"):
        read(tmp_path, zip_bytes({"data_batch_1.bin": b"\0" * 3000}), "zip")
    with pytest.raises(NotThatFormat, match="the archive holds no CIFAR files"):
        read(tmp_path, zip_bytes(files), "cifar")
    with pytest.raises(NotThatFormat, match="neither a ZIP nor a tar archive"):
        read(tmp_path, b"just text", "tar")
    with pytest.raises(UploadError, match="image_size: IDX and CIFAR images keep their own"):
        read(tmp_path, zip_bytes(files), "zip", image_size="8x8")
    small = LIMITS.__class__(**{**vars(LIMITS), "max_dataset_bytes": 100})
    with pytest.raises(UploadTooLarge, match="more than the limit of 100"):
        read(tmp_path, zip_bytes(files), "zip", limits=small)


def test_a_link_in_a_tar_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("train-images-idx3-ubyte")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(UploadError, match="'train-images-idx3-ubyte' is a link or a device"):
        read(tmp_path, buffer.getvalue(), "tar")


def test_an_idx_upload_over_http_trains_with_its_test_split(api):
    files, _ = mnist_like(train=40, test=10, side=8)
    uploaded = api.post("/datasets", files={"file": ("digits.tar.gz", tar_bytes(files))})
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()
    assert dataset["format"] == "tar" and dataset["test_samples"] == 10
    assert dataset["feature_shape"] == [8, 8, 1] and dataset["num_classes"] == 10
    job = {"model": {"name": "idx-mlp", "input": {"shape": [8, 8, 1]},
                     "layers": [{"type": "flatten"},
                                {"type": "dense", "units": 10, "activation": "softmax"}],
                     "objective": "categorical_crossentropy"},
           "training": {"epochs": 1, "batch_size": 8, "validation_split": 0.25, "seed": 1},
           "dataset": dataset["id"], "framework": "pytorch"}
    submitted = api.post("/jobs", json=job).json()
    assert submitted["split"]["test"] == 10 and submitted["split"]["test_from_data"] is True
    TrainingService(api.settings).run(submitted["id"], "unit-worker")
    done = api.get(f"/jobs/{submitted['id']}").json()
    assert done["status"] == "succeeded", done["failure_reason"]
    assert "test_accuracy" in done["final_metrics"]
