"""A process that logs numbered lines through `logging` (`setup_logging`, settings from the
environment, Loki shipped from the daily files), for tests/test_logs_kill.py.

    python tests/logging_child.py FIRST END

It logs seq FIRST..END-1 at about 5,000 lines/s, printing `logged N` after each 50 lines
(`logger.info` has returned for N) and `durable N` after each `files.flush()` (N is in the
file), then exits normally, which flushes the files and pushes to Loki within the close
deadline. It is meant to be killed before that.
"""

from __future__ import annotations

import logging
import sys
import time

from exporter import load_settings, setup_logging


def main(first: int, end: int) -> None:
    sinks = setup_logging(load_settings())
    logger = logging.getLogger("child")
    print("ready", flush=True)
    for seq in range(first, end):
        logger.info("line %d", seq, extra={"seq": seq})
        if seq % 50 == 49 or seq == end - 1:
            print(f"logged {seq}", flush=True)
            time.sleep(0.01)
        if seq % 500 == 499:
            sinks.files.flush()
            print(f"durable {seq}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
