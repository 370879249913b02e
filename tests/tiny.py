"""The tiny models of ``cotdistill.demo.tiny`` (also what ``cotdistill demo`` uses), for the tests."""

from cotdistill.demo.tiny import *  # noqa: F403
from cotdistill.demo.tiny import CHAT_TEMPLATE, FIXTURE_TEXT  # noqa: F401
