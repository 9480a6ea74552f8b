"""List files: both path separators, LF and CRLF, clear errors naming file and line."""
from __future__ import annotations

import numpy as np
import pytest

from common.box import Box
from common.listfile import ListFileError, format_line, read_list
from common.paths import TEST_LIST

NUMS = "84 161 92 169 106.25 107.75 146.75 112.25 125.25 142.75 105.25 157.75 139.75 161.75"


def write(path, lines, newline="\n"):
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


@pytest.mark.parametrize("sep", ["/", "\\"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_separators_and_line_ends(tmp_path, sep, newline):
    lst = write(tmp_path / "list.txt", [f"lfw_5590{sep}a.jpg {NUMS}", f"net_7876{sep}sub{sep}b.jpg {NUMS}"], newline)
    faces = read_list(lst)
    assert [f.image_path for f in faces] == [tmp_path / "lfw_5590" / "a.jpg", tmp_path / "net_7876" / "sub" / "b.jpg"]
    f = faces[0]
    assert f.box == Box(84, 161, 92, 169)  # order left right top bottom
    np.testing.assert_allclose(f.points, [[106.25, 107.75], [146.75, 112.25], [125.25, 142.75],
                                          [105.25, 157.75], [139.75, 161.75]])
    assert f.points.shape == (5, 2) and f.points.dtype == np.float64


def test_crlf_backslash_copy_of_sample_reads_the_same(tmp_path, sample_dir):
    """The sample's test list, rewritten as distributed elsewhere (backslashes, CRLF), gives
    the same faces, and the images load."""
    text = (sample_dir / TEST_LIST).read_text()
    win = tmp_path / TEST_LIST
    win.write_bytes(text.replace("/", "\\").replace("\n", "\r\n").encode())
    a = read_list(sample_dir / TEST_LIST)
    b = read_list(win)
    assert len(a) == len(b) == 100
    for fa, fb in zip(a, b):
        assert fb.image_path.relative_to(tmp_path) == fa.image_path.relative_to(sample_dir)
        assert fa.box == fb.box
        np.testing.assert_array_equal(fa.points, fb.points)
    assert a[0].load_gray().ndim == 2
    # format_line writes what read_list reads
    line = format_line(a[0], sample_dir)
    assert line.split()[0] == a[0].image_path.relative_to(sample_dir).as_posix()
    again = read_list(write(tmp_path / "again.txt", [line]))[0]
    assert again.box == a[0].box
    np.testing.assert_allclose(again.points, a[0].points, atol=1e-6)


def test_limit_and_blank_lines(tmp_path):
    lst = write(tmp_path / "l.txt", ["", f"a.jpg {NUMS}", "   ", "# comment", f"b.jpg {NUMS}", f"c.jpg {NUMS}"])
    assert [f.image_path.name for f in read_list(lst)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [f.image_path.name for f in read_list(lst, limit=2)] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("bad, why", [
    (f"c.jpg {NUMS} 7", "expected 15 fields"),
    ("c.jpg 84 161 92 169 1 2 3", "expected 15 fields"),
    (f"c.jpg {NUMS.replace('92', 'x92', 1)}", "not a number"),
    (f"c.jpg {NUMS.replace('84', 'nan', 1)}", "non-finite"),
])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_malformed_line_names_file_and_line(tmp_path, bad, why, newline):
    lst = write(tmp_path / "broken.txt", [f"a.jpg {NUMS}", f"b.jpg {NUMS}", bad], newline)
    with pytest.raises(ListFileError) as exc:
        read_list(lst)
    msg = str(exc.value)
    assert f"{lst}:3" in msg and why in msg


@pytest.mark.parametrize("box", ["161 84 92 169", "84 161 169 92", "84 84 92 169"])
def test_empty_box_rejected(tmp_path, box):
    nums = box + " " + " ".join(NUMS.split()[4:])
    lst = write(tmp_path / "boxes.txt", [f"a.jpg {NUMS}", f"b.jpg {nums}"])
    with pytest.raises(ListFileError, match=rf"{lst}:2: empty box"):
        read_list(lst)
    with pytest.raises(ValueError, match="empty box"):
        Box(*map(float, box.split()))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="list file not found"):
        read_list(tmp_path / "nope.txt")
    with pytest.raises(ListFileError, match="no faces"):
        read_list(write(tmp_path / "empty.txt", ["", "# only a comment"]))
