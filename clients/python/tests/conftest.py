# The fixtures (cluster, server, client, running) live in harness.py, which
# examples/python's tests share.
from harness import *  # noqa: F401,F403
from harness import pytest_runtest_makereport  # noqa: F401  (a hook: by name)
