"""The schedules' clock on the local stack: real time plus an offset that tests move forward.

Only schedules read it (``cartpilot.wiring.schedules``): a test advances it a month to see a monthly
recurrence fire, while approval expiries, undo windows and audit times keep the real clock.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from cartpilot.kernel.clock import utc_now

# A year at a time is plenty for any recurrence a test runs; a bound keeps a typo from overflowing.
MAX_ADVANCE_SECONDS = 366 * 24 * 3600


class AdjustableClock:
    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        return utc_now() + offset

    def advance(self, seconds: float) -> datetime:
        """Moves the schedules' time forward (never back: occurrences already fired stay fired)."""
        if not 0 < seconds <= MAX_ADVANCE_SECONDS:
            raise ValueError(f"advanceSeconds must be above 0 and at most {MAX_ADVANCE_SECONDS}")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()
