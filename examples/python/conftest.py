# The process harness of the Python client's tests (clients/python/tests).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python",
                                "tests"))
from harness import *  # noqa: E402,F401,F403
from harness import pytest_runtest_makereport  # noqa: E402,F401  (a hook: by name)
