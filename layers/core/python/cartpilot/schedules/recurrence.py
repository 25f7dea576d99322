"""When a schedule's occurrences fall: one ``at``, or an RFC 5545 RRULE between ``start`` and ``until``.

A shopping schedule buys things, so its rule is held to what makes sense for buying: at most one
occurrence a day, a bounded number of them over a bounded horizon, and every time with an explicit
UTC offset (a naive time would silently mean the server's zone). dateutil parses and expands the
rule; this module only decides which rules are acceptable and walks the occurrences.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from dateutil.rrule import rrule, rrulestr

from cartpilot.schedules.model import ScheduleSpec

# A purchase more often than daily is a mistake or a probe, not a shopping habit.
MIN_SPACING = timedelta(days=1)
MAX_OCCURRENCES = 120
MAX_HORIZON = timedelta(days=5 * 366)
# A one-off slightly in the past (clock skew, a slow client) still fires, at once; more is a mistake.
PAST_TOLERANCE = timedelta(minutes=5)
_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
# The parts of an RRULE value (RFC 5545 3.3.10) this API accepts; DTSTART comes from ``start``.
_PARTS = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY",
    "BYWEEKNO", "BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND", "WKST",
}  # fmt: skip


class ScheduleRejected(ValueError):
    """A schedule this API will not run; the message says why, for the client."""


def format_instant(moment: datetime) -> str:
    """The one stored and shown form of an occurrence time: UTC, whole seconds, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _rule_parts(text: str) -> dict[str, str]:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or any(char in body for char in "\r\n:"):
        raise ScheduleRejected("rrule must be one RRULE value, e.g. FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6")
    parts: dict[str, str] = {}
    for part in body.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not value or name not in _PARTS or name in parts:
            raise ScheduleRejected(f"rrule part {part!r} is not one this API accepts")
        parts[name] = value.strip()
    if "COUNT" in parts and "UNTIL" in parts:
        raise ScheduleRejected("rrule may have COUNT or UNTIL, not both (RFC 5545 3.3.10)")
    if parts.get("FREQ", "").upper() not in _FREQUENCIES:
        raise ScheduleRejected(
            "rrule FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY: at most one purchase a day"
        )
    return parts


def _rule(spec: ScheduleSpec) -> rrule:
    if spec.rrule is None or spec.start is None:
        raise ScheduleRejected("a recurrence needs rrule and start")
    parts = _rule_parts(spec.rrule)
    if "COUNT" not in parts and "UNTIL" not in parts and spec.until is None:
        raise ScheduleRejected("a recurrence must end: give until, or COUNT or UNTIL in the rrule")
    try:
        parsed = rrulestr(spec.rrule.strip(), dtstart=spec.start.astimezone(UTC), cache=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ScheduleRejected(f"rrule is not a valid RFC 5545 rule: {exc}") from None
    if not isinstance(parsed, rrule):
        raise ScheduleRejected("rrule must be a single rule")
    return parsed


def _recurrence(spec: ScheduleSpec) -> Iterator[datetime]:
    """The rule's occurrences, in order, cut at ``until`` and at the bound (one past it, to detect it)."""
    limit = spec.until.astimezone(UTC) if spec.until is not None else None
    for moment in itertools.islice(_rule(spec), MAX_OCCURRENCES + 1):
        if limit is not None and moment > limit:
            return
        yield moment


def frequency_of(spec: ScheduleSpec) -> str | None:
    """The recurrence's FREQ (DAILY ... YEARLY); None for a one-off."""
    if spec.rrule is None:
        return None
    return _rule_parts(spec.rrule)["FREQ"].upper()


def occurrences(spec: ScheduleSpec) -> list[datetime]:
    """Every occurrence of the schedule, in order (at most ``MAX_OCCURRENCES``, checked on creation)."""
    if spec.at is not None:
        return [spec.at.astimezone(UTC).replace(microsecond=0)]
    return list(itertools.islice(_recurrence(spec), MAX_OCCURRENCES))


def check_schedule(spec: ScheduleSpec, now: datetime) -> datetime:
    """Refuses a schedule this API will not run; returns its first occurrence from ``now`` on."""
    horizon = now + MAX_HORIZON
    if spec.at is not None:
        at = spec.at.astimezone(UTC)
        if at < now - PAST_TOLERANCE:
            raise ScheduleRejected("schedule.at is in the past")
        if at > horizon:
            raise ScheduleRejected("schedule.at is more than five years ahead")
        return at.replace(microsecond=0)
    if spec.until is not None and spec.start is not None and spec.until <= spec.start:
        raise ScheduleRejected("schedule.until must be after schedule.start")
    times = list(_recurrence(spec))
    if len(times) > MAX_OCCURRENCES:
        raise ScheduleRejected(f"a recurrence may have at most {MAX_OCCURRENCES} occurrences")
    if times and times[-1] > horizon:
        raise ScheduleRejected("a recurrence must end within five years")
    for earlier, later in itertools.pairwise(times):
        if later - earlier < MIN_SPACING:
            raise ScheduleRejected("occurrences must be at least a day apart")
    upcoming = [moment for moment in times if moment >= now - PAST_TOLERANCE]
    if not upcoming:
        raise ScheduleRejected("the recurrence has no occurrence from now on")
    return upcoming[0]


def next_occurrence(
    spec: ScheduleSpec, *, after: datetime | None = None, from_: datetime | None = None
) -> datetime | None:
    """The first occurrence strictly after ``after``, or at or after ``from_``; None when none is left."""
    for moment in occurrences(spec):
        if after is not None and moment <= after:
            continue
        if from_ is not None and moment < from_:
            continue
        return moment
    return None
