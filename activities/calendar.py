"""China's working days, and the activity that turns "N business days" into an absolute deadline.

A working day is Monday–Friday minus the public holidays, plus the make-up working weekends (调休) the State
Council announces each autumn for the following year (DOMAIN.md, "Business days").

The schedule is data, not a library call: the runtime reads the JSON shipped in ``activities/calendar_data/``
(generated once by ``activities/calendar_data/build.py``) and, optionally, an override file
(``Settings.calendar_data_path``) to which :func:`import_year` adds each newly published year. A calendar
library's upgrade can therefore never move a deadline.

Past the known years the calendar estimates (see :data:`CERTAIN_HOLIDAYS`) and says so (``estimated=True``);
it never raises in the middle of an order.

Operators add a year with ``python -m activities.calendar import-year 2027.json --override PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.activity_io import BusinessDeadline, BusinessDeadlineResult
from models.settings import Settings

DATA_FORMAT = 1
SHIPPED_DATA_PACKAGE = "activities.calendar_data"
SHIPPED_DATA_FILE = "cn_workdays.json"

# China has kept UTC+8 all year since it dropped summer time in 1991, so a fixed offset is exact for every
# date this service handles and does not depend on the worker having a time-zone database.
CHINA_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

# The fixed-date public holidays of the national holiday regulation (全国年节及纪念日放假办法, as revised in 2024,
# in force from 2025): New Year's Day, Labour Day (1–2 May) and National Day (1–3 October). They are the only days
# off that are certain before a year's schedule is published; the lunar festivals move and the make-up weekends
# are unknowable. Past the known data a working day is estimated as Monday–Friday minus these.
CERTAIN_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})

# Every official schedule since 2008 contains these days off; a schedule without them is a typo, not a new law.
REQUIRED_HOLIDAYS: tuple[tuple[int, int], ...] = ((1, 1), (5, 1), (10, 1), (10, 2), (10, 3))

# A deadline further away than this is a caller's bug, not a business rule (20 is the longest legal limit).
MAX_BUSINESS_DAYS = 2_000


class CalendarDataError(ValueError):
    """Calendar data that must not be used: the message lists every problem, one per line."""


class YearSchedule(BaseModel):
    """One year's official schedule: the days off (weekends inside a holiday may be listed too) and the
    make-up working weekends, with where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int = Field(ge=1990, le=2200)
    holidays: tuple[date, ...]
    makeup_workdays: tuple[date, ...] = ()
    source: str = Field(min_length=1)
    published: date | None = None  # the day the State Council published the schedule, when recorded
    note: str = ""


class CalendarData(BaseModel):
    """The file format, shipped and override alike."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = DATA_FORMAT
    data_version: str = ""
    description: str = ""
    years: tuple[YearSchedule, ...] = ()


def schedule_problems(schedule: YearSchedule) -> list[str]:
    """Everything wrong with one year's schedule, in plain words; empty when it is usable."""
    y = schedule.year
    problems: list[str] = []
    for label, days in (("holiday", schedule.holidays), ("make-up working day", schedule.makeup_workdays)):
        outside = sorted(d for d in days if d.year != y)
        if outside:
            problems.append(
                f"{label}s outside {y}: {_dates(outside)} (a date belongs to its own calendar year's entry)"
            )
        repeated = sorted({d for d in days if days.count(d) > 1})
        if repeated:
            problems.append(f"{label}s listed twice: {_dates(repeated)}")
    both = sorted(set(schedule.holidays) & set(schedule.makeup_workdays))
    if both:
        problems.append(f"listed both as a holiday and as a make-up working day: {_dates(both)}")
    weekdays = sorted(d for d in schedule.makeup_workdays if d.weekday() < 5)
    if weekdays:
        problems.append(
            f"make-up working days must be a Saturday or Sunday: {_dates(weekdays)} "
            f"({', '.join(d.strftime('%A') for d in weekdays)})"
        )
    missing = [date(y, m, d) for m, d in REQUIRED_HOLIDAYS if date(y, m, d) not in set(schedule.holidays)]
    if missing:
        problems.append(
            f"the fixed public holidays are missing: {_dates(missing)} (every official schedule has "
            "1 January, 1 May and 1–3 October off; is this the list of holidays?)"
        )
    return problems


def parse_year(raw: Mapping[str, Any], *, require_published: bool = False) -> YearSchedule:
    """Parse and validate one year's schedule; raises :class:`CalendarDataError` listing every problem."""
    try:
        schedule = YearSchedule.model_validate(raw)
    except ValidationError as e:
        lines = [f"{'.'.join(str(p) for p in err['loc']) or 'schedule'}: {err['msg']}" for err in e.errors()]
        raise CalendarDataError("calendar year refused:\n- " + "\n- ".join(lines)) from None
    problems = schedule_problems(schedule)
    if require_published and (schedule.published is None):
        problems.append("published: the date the official schedule was published is required")
    if problems:
        raise CalendarDataError(f"calendar year {schedule.year} refused:\n- " + "\n- ".join(problems))
    return schedule


def read_data(text: str, origin: str) -> CalendarData:
    """Parse a calendar file (shipped or override); raises :class:`CalendarDataError` on any problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise CalendarDataError(f"{origin}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CalendarDataError(f"{origin}: expected a JSON object with 'format' and 'years'")
    if raw.get("format") != DATA_FORMAT:
        raise CalendarDataError(f"{origin}: unsupported format {raw.get('format')!r} (this code reads {DATA_FORMAT})")
    years = [parse_year(y) for y in raw.get("years", [])]
    seen: set[int] = set()
    for s in years:
        if s.year in seen:
            raise CalendarDataError(f"{origin}: year {s.year} appears twice")
        seen.add(s.year)
    return CalendarData(
        format=DATA_FORMAT,
        data_version=str(raw.get("data_version", "")),
        description=str(raw.get("description", "")),
        years=tuple(sorted(years, key=lambda s: s.year)),
    )


def write_data(data: CalendarData, path: Path) -> None:
    """Write a calendar file atomically (a reader sees the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data.model_dump(mode="json"), ensure_ascii=False, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shipped_data() -> CalendarData:
    text = resources.files(SHIPPED_DATA_PACKAGE).joinpath(SHIPPED_DATA_FILE).read_text(encoding="utf-8")
    return read_data(text, f"{SHIPPED_DATA_PACKAGE}/{SHIPPED_DATA_FILE}")


class BusinessCalendar:
    """China's working days over the known years, with an explicit, flagged estimate outside them."""

    def __init__(self, schedules: Iterable[YearSchedule], data_version: str = "") -> None:
        self._years: dict[int, YearSchedule] = {}
        for s in schedules:
            problems = schedule_problems(s)
            if problems:
                raise CalendarDataError(f"calendar year {s.year} refused:\n- " + "\n- ".join(problems))
            self._years[s.year] = s  # a later schedule for the same year replaces the earlier one
        self._holidays = frozenset(d for s in self._years.values() for d in s.holidays)
        self._makeup = frozenset(d for s in self._years.values() for d in s.makeup_workdays)
        self._data_version = data_version

    @classmethod
    def load(cls, override_path: Path | None = None) -> BusinessCalendar:
        """The shipped schedule, with every year found in ``override_path`` replacing the shipped one.

        A missing override file is an empty one (no year imported yet); a malformed one raises
        :class:`CalendarDataError`, so a worker refuses to start rather than compute wrong deadlines.
        """
        shipped = shipped_data()
        schedules = list(shipped.years)
        version = shipped.data_version
        if override_path is not None and override_path.exists():
            override = read_data(override_path.read_text(encoding="utf-8"), str(override_path))
            schedules.extend(override.years)
            if override.years:
                version += "+override(" + ",".join(str(s.year) for s in override.years) + ")"
        return cls(schedules, data_version=version)

    @classmethod
    def from_settings(cls, settings: Settings) -> BusinessCalendar:
        return cls.load(settings.calendar_data_path)

    @property
    def known_years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    @property
    def data_version(self) -> str:
        return self._data_version

    def schedule(self, year: int) -> YearSchedule | None:
        return self._years.get(year)

    def is_known(self, day: date) -> bool:
        return day.year in self._years

    def is_workday(self, day: date) -> bool:
        """Whether ``day`` is a working day in China; estimated (see :data:`CERTAIN_HOLIDAYS`) outside the
        known years; use :meth:`is_known` to tell."""
        if not self.is_known(day):
            return day.weekday() < 5 and (day.month, day.day) not in CERTAIN_HOLIDAYS
        if day in self._makeup:
            return True
        return day.weekday() < 5 and day not in self._holidays

    def add_business_days(self, start: date, n: int) -> tuple[date, bool]:
        """The ``n``-th working day after ``start`` (``start`` itself never counts, DOMAIN.md), and whether any
        day on the way lay outside the known years, making the answer an estimate. ``n == 0`` returns ``start``."""
        if not 0 <= n <= MAX_BUSINESS_DAYS:
            raise ValueError(f"business days must be between 0 and {MAX_BUSINESS_DAYS}, got {n}")
        day, counted, estimated = start, 0, False
        while counted < n:
            day += timedelta(days=1)
            estimated = estimated or not self.is_known(day)
            if self.is_workday(day):
                counted += 1
        return day, estimated

    def describe(self) -> str:
        years = self.known_years
        span = f"{years[0]}–{years[-1]}" if years else "none"
        return f"China working-day calendar {self._data_version or '(unversioned)'}, known years {span}"


def end_of_china_day(day: date) -> datetime:
    """The last instant of ``day`` in China time (23:59:59.999999 +08:00), in UTC."""
    return datetime.combine(day, time.max, CHINA_TIME).astimezone(UTC)


def business_deadline(calendar: BusinessCalendar, req: BusinessDeadline) -> BusinessDeadlineResult:
    """The pure computation behind the activity: end of the last business day, then scaled towards ``start``.

    The count starts the day after ``start``'s date in China. A naive ``start`` is taken as UTC.
    """
    start = req.start if req.start.tzinfo is not None else req.start.replace(tzinfo=UTC)
    last_day, estimated = calendar.add_business_days(start.astimezone(CHINA_TIME).date(), req.business_days)
    raw_at = end_of_china_day(last_day)
    at = start + (raw_at - start) * req.scale
    note = calendar.describe()
    if estimated:
        note += (
            f"; {last_day.isoformat()} is estimated: part of the range lies outside the known years "
            "(Monday–Friday minus 1 Jan, 1–2 May and 1–3 Oct); recompute once that year's schedule is imported"
        )
    return BusinessDeadlineResult(at=at.astimezone(UTC), last_day=last_day, estimated=estimated, note=note)


class CalendarActivities:
    """The calendar's activity. Workflows call it once per deadline and keep the instant it returns, so a
    replay never depends on calendar data or code."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self._calendar = calendar

    @activity.defn(name="business_deadline")
    async def business_deadline(self, req: BusinessDeadline) -> BusinessDeadlineResult:
        try:
            return business_deadline(self._calendar, req)
        except ValueError as e:
            # A bad request does not get better by retrying.
            raise ApplicationError(str(e), type="InvalidBusinessDeadline", non_retryable=True) from e

    def activities(self) -> list[Any]:
        return [self.business_deadline]


def import_year(source: Path | str | Mapping[str, Any], override_path: Path, *, replace: bool = False) -> YearSchedule:
    """Validate one year's official schedule and add it to the override file; returns what was stored.

    ``source`` is a path to a JSON file, JSON text, or a mapping with ``year``, ``holidays``,
    ``makeup_workdays``, ``source`` and ``published`` (all dates ``YYYY-MM-DD``). Raises
    :class:`CalendarDataError` with every problem listed, and changes nothing, when the schedule is not
    plausible (dates outside the year, a day both off and worked, a make-up day on a weekday, the fixed
    holidays missing) or when the year is already in the override file and ``replace`` is false.
    Workers read the file when they start: restart them to use the new year.
    """
    raw = _read_source(source)
    schedule = parse_year(raw, require_published=True)
    existing = (
        read_data(override_path.read_text(encoding="utf-8"), str(override_path))
        if override_path.exists()
        else CalendarData(description="Official schedules imported after the shipped data (import_year).")
    )
    if any(s.year == schedule.year for s in existing.years) and not replace:
        raise CalendarDataError(
            f"calendar year {schedule.year} is already in {override_path}; pass replace=True (--replace) "
            "to overwrite it"
        )
    years = sorted([s for s in existing.years if s.year != schedule.year] + [schedule], key=lambda s: s.year)
    write_data(existing.model_copy(update={"years": tuple(years)}), override_path)
    return schedule


def _read_source(source: Path | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, "schedule"
    else:
        path = Path(source)
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise CalendarDataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise CalendarDataError(f"{origin}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CalendarDataError(f"{origin}: expected one JSON object for one year")
    return raw


def _dates(days: Sequence[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activities.calendar", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-year", help="add a year's official schedule to the override file")
    imp.add_argument("file", type=Path, help="JSON: year, holidays, makeup_workdays, source, published")
    imp.add_argument("--override", type=Path, help="override file (default: ICPFLOW_CALENDAR_DATA_PATH)")
    imp.add_argument("--replace", action="store_true", help="overwrite the year if it is already there")
    show = sub.add_parser("years", help="list the known years and where each comes from")
    show.add_argument("--override", type=Path)
    args = parser.parse_args(argv)

    override: Path | None = args.override or Settings().calendar_data_path
    if args.command == "import-year":
        if override is None:
            parser.error("no override file: pass --override or set ICPFLOW_CALENDAR_DATA_PATH")
        try:
            s = import_year(args.file, override, replace=args.replace)
        except CalendarDataError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{s.year}: {len(s.holidays)} holidays, {len(s.makeup_workdays)} make-up working days → {override}")
        return 0
    calendar = BusinessCalendar.load(override)
    print(calendar.describe())
    for year in calendar.known_years:
        schedule = calendar.schedule(year)
        assert schedule is not None
        published = schedule.published.isoformat() if schedule.published else "unknown"
        print(f"{year}  published {published:<10}  {schedule.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
