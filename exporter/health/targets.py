"""The apps a sidecar watches: the target list (EXPORTER_TARGETS, EXPORTER_TARGETS_FILE re-read
when it changes), their scrapes each history interval, and how each one fared."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from exporter.config.targets import Target, parse_file_sd
from exporter.health.scrape import Scrape, Scraper
from exporter.signals import Reducer

log = logging.getLogger("exporter.targets")


class TargetsFile:
    """A file_sd file, read again whenever its modification time or size changes. A file that
    cannot be read or parsed keeps the targets it had, and says why in `error`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._stamp: tuple[float, int] | None = None
        self._targets: list[Target] = []

    def targets(self) -> list[Target]:
        """The file's targets as of now."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot read {self.path} ({exc.strerror})")
            return self._targets
        stamp = (info.st_mtime, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._targets = parse_file_sd(self.path.read_text(encoding="utf-8"),
                                              str(self.path))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                self._fail(str(exc))
            else:
                if self.error is not None:
                    log.info("targets file %s is readable again", self.path)
                self.error = None
                log.info("watching %d target(s) from %s", len(self._targets), self.path)
        return self._targets

    def _fail(self, reason: str) -> None:
        if reason != self.error:
            log.warning("targets file: %s (keeping the %d target(s) it had)", reason,
                        len(self._targets))
        self.error = reason


class TargetsSource:
    """Scrapes every target into the history's reducer; the last scrape of each stays for
    health, the API and the page."""

    def __init__(
        self, targets: Sequence[Target], targets_file: Path | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._static = list(targets)
        self.file = TargetsFile(targets_file) if targets_file is not None else None
        self._scraper = Scraper(timeout)
        self._lock = threading.Lock()
        self._last: list[Scrape] = []
        self.timeout = timeout

    def targets(self) -> list[Target]:
        """The targets watched now: the listed ones, then those of the file."""
        listed = {t.instance: t for t in self._static}
        if self.file is not None:
            for target in self.file.targets():
                listed.setdefault(target.instance, target)
        return list(listed.values())

    def __call__(self, reducer: Reducer) -> None:
        """Scrape every target now and add what the up ones served (a history `Source`)."""
        scrapes = self._scraper.scrape_all(self.targets(), reducer.names)
        for scrape in scrapes:
            if scrape.up:
                reducer.add_text(scrape.samples, scrape.target.instance)
        previous = {s.target.instance: s for s in self.last()}
        for scrape in scrapes:
            before = previous.get(scrape.target.instance)
            if before is None or before.reason != scrape.reason:  # changes, not every round
                if scrape.up:
                    log.info("target %s is up", scrape.target.instance)
                else:
                    log.warning("target %s is down: %s", scrape.target.instance, scrape.reason)
        with self._lock:
            # The samples are done with: keep what health and the page need.
            self._last = [Scrape(s.target, s.up, s.reason, s.seconds, s.checked_at, s.series)
                          for s in scrapes]

    def last(self) -> list[Scrape]:
        """Each target's last scrape (empty before the first interval)."""
        with self._lock:
            return list(self._last)

    def close(self) -> None:
        """Stop the scraping threads."""
        self._scraper.close()
