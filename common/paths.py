"""Where things live. Defaults are relative to the project root, never to the current directory."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "DEEP_LANDMARK_DATA"
DEFAULT_DATA = ROOT / "dataset" / "train"
HDF5_DIR = ROOT / "dataset" / "hdf5"
MODEL_DIR = ROOT / "model"
RELEASED_MODEL = MODEL_DIR / "released"
LOG_DIR = ROOT / "log"
RESULT_DIR = ROOT / "result"
SAMPLE_DATA = ROOT / "tests" / "data" / "sample"

TRAIN_LIST = "trainImageList.txt"
TEST_LIST = "testImageList.txt"

DATA_HELP = f"""The CUHK 5-point data set was not found in {{where}}.
Get it from the authors' page for "Deep Convolutional Network Cascade for Facial Point
Detection" (CUHK MMLab; file train.zip, research use), unpack it so that the folder holds
{TRAIN_LIST}, {TEST_LIST}, lfw_5590/ and net_7876/, and either put it at
{DEFAULT_DATA.relative_to(ROOT)}/ (the default) or name its folder with --data DIR or ${DATA_ENV}."""


class DataMissing(FileNotFoundError):
    pass


def data_dir(arg: str | os.PathLike | None = None) -> Path:
    """The data set folder: --data, else $DEEP_LANDMARK_DATA, else dataset/train/."""
    chosen = arg or os.environ.get(DATA_ENV) or DEFAULT_DATA
    return Path(chosen).expanduser().resolve()


def data_lists(arg: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(train list, test list) of the data set folder, or DataMissing with how to get it."""
    folder = data_dir(arg)
    train, test = folder / TRAIN_LIST, folder / TEST_LIST
    if not (train.is_file() and test.is_file()):
        raise DataMissing(DATA_HELP.format(where=folder))
    return train, test


def rel(path: Path) -> str:
    """A path as shown to users and written into prototxt: relative to the root when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
