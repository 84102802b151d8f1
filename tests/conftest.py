"""Shared test set-up: one torch thread per pytest-xdist worker, so parallel workers do not fight;
the rule for tools a test needs (`unavailable`); a headless Chromium (`chrome`) for the study page
and the report's layout."""

import os
import shutil
import subprocess
import tempfile

import pytest

import torch

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


def unavailable(reason: str, asked: bool = False):
    """A tool a test needs (SLURM, a browser) cannot be installed or started: under CI (CI=true),
    or where the test was asked for explicitly (ASKED: PALETTE_TEST_SLURM=1, PALETTE_TEST_BROWSER=1),
    that is a failure with its reason, never a quiet skip; elsewhere the test is skipped with the
    reason. A test that needs hardware the machine lacks (CUDA on the CPU CI) is no such tool: it
    stays a skipif, and benchmarks/gpu_check.sh fails where CUDA is absent."""
    import pytest

    if asked or os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"needed but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


BROWSER_ASKED = os.environ.get("PALETTE_TEST_BROWSER") == "1"  # asked for: a missing browser fails the test


def _chromium_or_skip():
    """Debian's chromium and chromium-driver (installed here when missing and we are root) and
    Selenium; skips with the reason when any is unavailable (fails under CI or when asked for:
    conftest.unavailable)."""
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')", asked=BROWSER_ASKED)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver) and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True,
                           capture_output=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.SubprocessError, OSError) as error:
            unavailable(f"could not install chromium and chromium-driver with apt-get: {error}", asked=BROWSER_ASKED)
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        unavailable("no chromium/chromedriver on PATH and cannot install them (needs root and apt-get)",
                    asked=BROWSER_ASKED)
    return browser, driver


@pytest.fixture
def chrome(tmp_path):
    """A headless Chromium (900 x 640; `set_window_size` for another screen)."""
    browser, driver_path = _chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=900,640"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as error:  # a browser that will not start: skipped with the reason, a failure under CI
        unavailable(f"headless chromium did not start: {error}", asked=BROWSER_ASKED)
    yield driver
    driver.quit()
