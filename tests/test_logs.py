"""RUN/log.txt: our records and the libraries' go to the file; the console keeps ours only."""

import logging
import sys
import warnings

from cotdistill.run.logs import run_log


def test_library_messages_go_to_the_log_file_and_ours_to_both(tmp_path, capsys):
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)  # what the command line sets up (basicConfig)
    root.addHandler(console)
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        with run_log(tmp_path) as path:
            logging.getLogger("cotdistill.run.pipeline").info("[train] done in 1.0 s")
            logging.getLogger("cotdistill.student.train").warning("ours: worth seeing")
            logging.getLogger("transformers.modeling_utils").warning("library: weights not initialised")
            warnings.warn("a library's UserWarning", UserWarning, stacklevel=1)
    finally:
        root.removeHandler(console)
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "ours: worth seeing" in err
    assert "library" not in err and "UserWarning" not in err and "[train] done" not in err
    log = path.read_text()
    for line in (
        "[train] done in 1.0 s",
        "ours: worth seeing",
        "library: weights not initialised",
        "UserWarning",
    ):
        assert line in log, line
    # the block's set-up is undone: the console shows library warnings again outside a run
    logging.getLogger("transformers.modeling_utils").warning("outside")
    assert console.filters == [] and root.level == level
