"""The browser tests keep a screenshot and print the console of a failed test, and each
module drives one chromium of its own (the ``browser`` fixture)."""

import pytest
from lab_server import running_chromium


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, driven by playwright, for one test module."""
    with running_chromium() as chromium:
        yield chromium


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
