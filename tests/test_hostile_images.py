"""Images that are not images: a FIFO, a device, a huge file. Nothing that reads an image may hang on one
or load it whole; the readers refuse such a file up front (counted, logged, the post read without it)."""

import os
import threading

import pytest

from cotdistill.images import MAX_IMAGE_BYTES, ImageFileError, image_problem, read_image_bytes
from cotdistill.readers import load_split
from cotdistill.run.demo import write_synthetic_twitter

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


def finishes(fn, seconds=20):
    """fn()'s result or exception, or an AssertionError when it has not returned within ``seconds``."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:
            box["error"] = err

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    return box


@pytest.fixture
def hostile(tmp_path):
    """Synthetic Twitter data whose first two training images are a FIFO and a sparse 30 MB file."""
    data = write_synthetic_twitter(tmp_path / "data")
    train = load_split("twitter2015", data, "train").examples
    fifo, huge = train[0].image, train[1].image
    os.remove(fifo)
    os.mkfifo(fifo)
    with open(huge, "wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 10 * 1024 * 1024)
    return data, fifo, huge


def test_read_image_bytes_refuses_a_fifo_and_a_huge_file_without_blocking(hostile):
    _, fifo, huge = hostile
    for path, why in ((fifo, "not a regular file"), (huge, "over the")):
        box = finishes(lambda p=path: read_image_bytes(p))
        assert isinstance(box.get("error"), ImageFileError) and why in str(box["error"])
        assert why in image_problem(path)
    assert finishes(lambda: read_image_bytes("/dev/zero")).get("error") is not None


def test_the_generation_digest_of_a_fifo_image_does_not_hang(hostile):
    from cotdistill.distill.runner import image_digest

    _, fifo, huge = hostile
    assert finishes(lambda: image_digest(fifo))["value"] == "unreadable"
    assert finishes(lambda: image_digest(huge))["value"] == "unreadable"


def test_readers_refuse_such_images_counted_and_read_the_post_without_it(hostile, caplog):
    data, fifo, huge = hostile
    split = finishes(lambda: load_split("twitter2015", data, "train"))["value"]
    by_image = {ex.meta.get("image_id"): ex for ex in split.examples}
    assert split.report.images_refused == 2
    assert any("2 images refused" in note for note in split.report.notes)
    for path in (fifo, huge):
        ex = by_image[os.path.basename(path).rsplit(".", 1)[0]]
        assert ex.image is None  # the post stays, read as text alone
    assert sum(ex.image is not None for ex in split.examples) == len(split.examples) - 2
