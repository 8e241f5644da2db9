"""ChromeService: one Chromium window showing the /dino/ game, driven through Selenium.

Every action first checks that the browser and the game page are still there and brings
back whichever died (a closed window, a crashed tab, a killed browser), so a stream
survives the browser being closed by mistake. The game itself is driven through the
small JavaScript API the page exposes as ``window.dino``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, NoSuchWindowException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.support.ui import WebDriverWait

DEFAULT_GAME_URL = "http://127.0.0.1:8000/dino/"
DEFAULT_CHROME_BINARY = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"

# Flags for a browser nobody touches: no first-run UI, no updates or sync chatter, and no
# throttling of a window that is covered or in the background (the game must keep its
# frame rate while OBS captures it).
COMMON_ARGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--autoplay-policy=no-user-gesture-required",
)
HEADLESS_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu")

_READY = "return !!(window.dino && window.dino.ready)"
PROFILE_PREFIX = "dinochrome-profile-"

logger = logging.getLogger("services.dinochrome.chrome")


class ChromeError(RuntimeError):
    """The browser or the game page cannot be brought up; the message says why."""


class ChromeService:
    """Opens the game in Chromium and plays it: restart, jump, duck, score."""

    def __init__(
        self,
        url: str = DEFAULT_GAME_URL,
        *,
        chrome_binary: str = DEFAULT_CHROME_BINARY,
        chromedriver: str = DEFAULT_CHROMEDRIVER,
        window_size: tuple[int, int] = (1280, 720),
        kiosk: bool = True,
        remote_debugging_port: int | None = None,
        page_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.chrome_binary = chrome_binary
        self.chromedriver = chromedriver
        self.window_size = window_size
        self.kiosk = kiosk
        self.remote_debugging_port = remote_debugging_port
        self.page_timeout = page_timeout
        self.headless = False
        self.browser: Browser | None = None
        self.driver: webdriver.Chrome | None = None
        self.browser_starts = 0
        self.page_loads = 0
        # One WebDriver session is not safe for concurrent commands.
        self._lock = threading.RLock()

    # ---- lifecycle -----------------------------------------------------------------

    def initialize_browser(self, headless: bool = False) -> None:
        """Start Chromium and open the game; headless for tests, headful (kiosk) on stream."""
        with self._lock:
            self.headless = headless
            self.close()
            self._launch()
            self._open_page()

    def close(self) -> None:
        with self._lock:
            browser, self.browser, self.driver = self.browser, None, None
            if browser is not None:
                browser.quit()

    def __enter__(self) -> ChromeService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the game ------------------------------------------------------------------

    def restart(self) -> int:
        """Start a new run; returns the score right after the restart."""
        return int(self.execute("return window.dino.restart()"))

    def get_score(self) -> int:
        return int(self.execute("return window.dino.score()"))

    def get_state(self) -> str:
        return str(self.execute("return window.dino.state()"))

    def jump(self) -> bool:
        return bool(self.execute("return window.dino.jump()"))

    def duck(self, ms: int = 400) -> bool:
        return bool(self.execute("return window.dino.duck(arguments[0])", ms))

    def set_autoplay(self, on: bool) -> bool:
        return bool(self.execute("return window.dino.autoplay(arguments[0])", on))

    def stats(self) -> dict[str, Any]:
        return dict(self.execute("return window.dino.stats()"))

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.ensure_page()
            assert self.driver is not None
            self.driver.save_screenshot(str(path))
        return path

    def execute(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the game page, reviving the browser or page first if needed."""
        with self._lock:
            self.ensure_page()
            assert self.driver is not None
            try:
                return self.driver.execute_script(script, *args)
            except JavascriptException as exc:
                raise ChromeError(f"the game page refused {script!r}: {_first_line(exc)}") from exc
            except WebDriverException as exc:
                # Died between the check and the call: revive once and retry.
                logger.warning("browser command failed, reviving: %s", _first_line(exc))
            self._relaunch()
            try:
                return self.driver.execute_script(script, *args)
            except WebDriverException as exc:
                raise ChromeError(f"the browser fails even after a restart: {_first_line(exc)}") from exc

    # ---- keeping the browser and the page alive -----------------------------------

    def ensure_page(self) -> None:
        """Make sure a browser is running and shows the game, reopening what died."""
        with self._lock:
            if self.driver is None:
                self._launch()
                self._open_page()
                return
            try:
                ready = self.driver.execute_script(_READY)
            except NoSuchWindowException:
                try:
                    ready = self._recover_window()
                except WebDriverException as exc:
                    logger.warning("no usable window left, starting a new browser: %s", _first_line(exc))
                    self._relaunch()
                    return
            except Exception as exc:  # session gone, browser killed, chromedriver gone
                logger.warning("browser is gone, starting a new one: %s", _first_line(exc))
                self._relaunch()
                return
            if not ready:
                logger.warning("game page is not loaded, reopening %s", self.url)
                self._open_page()

    def _recover_window(self) -> bool:
        assert self.driver is not None
        try:
            handles = self.driver.window_handles
        except Exception:
            handles = []
        if not handles:
            logger.warning("the game window was closed, starting a new browser")
            self._relaunch()
            return True
        logger.warning("the game window was closed, using another window of the browser")
        self.driver.switch_to.window(handles[0])
        return False

    def _relaunch(self) -> None:
        self.close()
        self._launch()
        self._open_page()

    def _launch(self) -> None:
        self.browser = start_chromium(
            headless=self.headless,
            window_size=self.window_size,
            kiosk=self.kiosk,
            remote_debugging_port=self.remote_debugging_port,
            chrome_binary=self.chrome_binary,
            chromedriver=self.chromedriver,
            page_timeout=self.page_timeout,
        )
        self.driver = self.browser.driver
        self.browser_starts += 1
        logger.info("browser started", extra={"headless": self.headless, "browser_starts": self.browser_starts})

    def _open_page(self) -> None:
        assert self.driver is not None
        try:
            self.driver.get(self.url)
            WebDriverWait(self.driver, self.page_timeout, poll_frequency=0.2).until(lambda d: d.execute_script(_READY))
        except Exception as exc:
            raise ChromeError(f"the game page {self.url} did not load: {_first_line(exc)}") from exc
        self.page_loads += 1
        logger.info("game page opened", extra={"url": self.url, "page_loads": self.page_loads})


@dataclass
class Browser:
    """A Chromium started through chromedriver, with its throw-away profile."""

    driver: webdriver.Chrome
    profile_dir: str

    def quit(self) -> None:
        try:
            self.driver.quit()
        except Exception as exc:  # already dead: quitting is best effort
            logger.debug("quit failed: %s", _first_line(exc))
        shutil.rmtree(self.profile_dir, ignore_errors=True)


def chromium_options(
    *,
    headless: bool,
    profile_dir: str,
    window_size: tuple[int, int] = (1280, 720),
    kiosk: bool = True,
    remote_debugging_port: int | None = None,
    chrome_binary: str = DEFAULT_CHROME_BINARY,
) -> Options:
    options = Options()
    options.binary_location = chrome_binary
    args = [*COMMON_ARGS, f"--user-data-dir={profile_dir}", f"--window-size={window_size[0]},{window_size[1]}"]
    if headless:
        args.extend(HEADLESS_ARGS)
    else:
        if kiosk:
            args.append("--kiosk")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
        # No "controlled by automated test software" bar over the game on stream.
        options.add_experimental_option("excludeSwitches", ["enable-automation"])
    if remote_debugging_port:
        args.append(f"--remote-debugging-port={remote_debugging_port}")
    for arg in args:
        options.add_argument(arg)
    return options


def start_chromium(
    *,
    headless: bool,
    window_size: tuple[int, int] = (1280, 720),
    kiosk: bool = True,
    remote_debugging_port: int | None = None,
    chrome_binary: str = DEFAULT_CHROME_BINARY,
    chromedriver: str = DEFAULT_CHROMEDRIVER,
    page_timeout: float = 60.0,
) -> Browser:
    """Start Chromium with a fresh profile; ChromeError says why when it cannot."""
    for path, what in ((chrome_binary, "Chromium"), (chromedriver, "chromedriver")):
        if not Path(path).is_file():
            raise ChromeError(f"{what} not found at {path}: install it (apt-get install chromium chromium-driver)")
    if not headless and not has_display():
        # Chromium would only say "Chrome instance exited"; say what is actually missing.
        raise ChromeError(
            "no display to show the game on (neither DISPLAY nor WAYLAND_DISPLAY is set): run the worker "
            "in the streaming desktop session, or set Config dino_headless=true (DINO_HEADLESS=true)"
        )
    sweep_stale_profiles()
    profile_dir = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
    options = chromium_options(
        headless=headless,
        profile_dir=profile_dir,
        window_size=window_size,
        kiosk=kiosk,
        remote_debugging_port=remote_debugging_port,
        chrome_binary=chrome_binary,
    )
    try:
        # An explicit chromedriver path keeps Selenium Manager from looking for (or downloading) one.
        driver = webdriver.Chrome(options=options, service=DriverService(executable_path=chromedriver))
    except Exception as exc:
        shutil.rmtree(profile_dir, ignore_errors=True)
        raise ChromeError(f"Chromium did not start: {_first_line(exc)}") from exc
    driver.set_page_load_timeout(page_timeout)
    driver.set_script_timeout(30)
    return Browser(driver=driver, profile_dir=profile_dir)


def has_display() -> bool:
    """Whether a visible browser window can open here (always on macOS and Windows)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def sweep_stale_profiles(directory: str | None = None) -> int:
    """Delete the profiles of processes that died without closing their browser.

    A worker killed mid-stream cannot clean up; on a machine that streams for months
    those directories would pile up in /tmp. Each profile's name carries its owner's pid.
    """
    removed = 0
    for path in Path(directory or tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*"):
        owner = path.name[len(PROFILE_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _process_alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
