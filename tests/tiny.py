"""The tiny models of ``cotdistill.run.demo.tiny`` (also what ``cotdistill demo`` uses), for the tests."""

from cotdistill.run.demo.tiny import *  # noqa: F403
from cotdistill.run.demo.tiny import CHAT_TEMPLATE, FIXTURE_TEXT  # noqa: F401
