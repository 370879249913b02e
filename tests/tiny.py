"""The tiny models of ``cotdistill.tiny`` (also what ``cotdistill demo`` uses), for the tests."""

from cotdistill.tiny import *  # noqa: F403
from cotdistill.tiny import CHAT_TEMPLATE, FIXTURE_TEXT  # noqa: F401
