"""China's business-day calendar (DOMAIN.md, "Business days") and the ``business_deadline`` activity."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.calendar import (
    BusinessCalendar,
    CalendarActivities,
    CalendarDataError,
    import_year,
    shipped_data,
)
from models.activity_io import BusinessDeadline
from models.settings import Settings

CHINA = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return BusinessCalendar.load()


def a_2027_schedule(**overrides: Any) -> dict[str, Any]:
    """A plausible schedule for 2027, made up for these tests (it is not the official one)."""
    schedule: dict[str, Any] = {
        "year": 2027,
        "holidays": ["2027-01-01", "2027-05-01", "2027-05-02", "2027-05-03", "2027-10-01", "2027-10-02"]
        + [f"2027-10-0{d}" for d in range(3, 8)],
        "makeup_workdays": ["2027-09-26", "2027-10-09"],
        "source": "test fixture, not the State Council's notice",
        "published": "2026-11-10",
    }
    schedule.update(overrides)
    return schedule


# ---------------------------------------------------------------------------------------------- the data


def test_shipped_data_covers_2004_to_2026_and_records_its_source() -> None:
    data = shipped_data()
    years = [s.year for s in data.years]
    assert years == list(range(2004, 2027))
    assert data.data_version
    latest = data.years[-1]
    assert latest.published == date(2025, 11, 4) and "2026" in latest.source


def test_2026_make_up_working_days_match_the_state_council_schedule(calendar: BusinessCalendar) -> None:
    schedule = calendar.schedule(2026)
    assert schedule is not None
    assert schedule.makeup_workdays == (
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    )
    assert all(date(2026, 10, d) in schedule.holidays for d in range(1, 8))


def test_a_make_up_saturday_is_a_working_day_and_a_holiday_weekday_is_not(calendar: BusinessCalendar) -> None:
    assert date(2026, 10, 10).weekday() == 5
    assert calendar.is_workday(date(2026, 10, 10))
    assert calendar.is_workday(date(2026, 9, 20))  # a make-up Sunday
    assert not calendar.is_workday(date(2026, 10, 5))  # a Monday inside National Day
    assert not calendar.is_workday(date(2026, 10, 17))  # an ordinary Saturday
    assert calendar.is_workday(date(2026, 10, 8))


# ---------------------------------------------------------------------------------------------- counting


def test_counting_starts_the_day_after_start(calendar: BusinessCalendar) -> None:
    # Friday 9 Oct 2026: the next working day is the make-up Saturday, 10 Oct.
    assert calendar.add_business_days(date(2026, 10, 9), 1) == (date(2026, 10, 10), False)
    assert calendar.add_business_days(date(2026, 9, 18), 1) == (date(2026, 9, 20), False)  # make-up Sunday
    assert calendar.add_business_days(date(2026, 3, 2), 0) == (date(2026, 3, 2), False)


def test_twenty_business_days_from_an_ordinary_monday_end_four_weeks_later(calendar: BusinessCalendar) -> None:
    assert calendar.add_business_days(date(2026, 3, 2), 20) == (date(2026, 3, 30), False)


def test_review_starting_just_before_national_day_2026_skips_the_holiday_and_counts_the_make_up_saturday(
    calendar: BusinessCalendar,
) -> None:
    # From Wed 30 Sep: 1–7 Oct off; Thu 8, Fri 9, Sat 10 (make-up) are days 1–3; then 17 weekdays to Tue 3 Nov.
    assert calendar.add_business_days(date(2026, 9, 30), 20) == (date(2026, 11, 3), False)
    # Mid-Autumn (25–27 Sep) and National Day in one range: Mon 28, Tue 29, Wed 30, Thu 8, Fri 9.
    assert calendar.add_business_days(date(2026, 9, 24), 5) == (date(2026, 10, 9), False)


def test_range_past_the_known_years_is_estimated_without_failing(calendar: BusinessCalendar) -> None:
    last, estimated = calendar.add_business_days(date(2026, 12, 15), 20)
    # 16–31 Dec 2026 gives 12 days; 1 Jan 2027 is a certain holiday; 4–8 Jan and 11–13 Jan give the other 8.
    assert (last, estimated) == (date(2027, 1, 13), True)
    assert 2027 not in calendar.known_years


def test_estimate_skips_the_certain_fixed_date_holidays_and_weekends(calendar: BusinessCalendar) -> None:
    # Tue 28 Sep 2027: Wed 29, Thu 30; Fri 1 Oct (National Day), weekend; Mon 4, Tue 5, Wed 6.
    assert calendar.add_business_days(date(2027, 9, 28), 5) == (date(2027, 10, 6), True)
    assert not calendar.is_workday(date(2030, 5, 1))
    assert calendar.is_workday(date(2030, 5, 6))


def test_only_days_in_the_range_decide_whether_it_is_estimated(calendar: BusinessCalendar) -> None:
    assert calendar.add_business_days(date(2026, 12, 25), 4) == (date(2026, 12, 31), False)
    assert calendar.add_business_days(date(2026, 12, 31), 1) == (date(2027, 1, 4), True)


def test_negative_business_days_are_refused(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="between 0 and"):
        calendar.add_business_days(date(2026, 3, 2), -1)


# ---------------------------------------------------------------------------------------------- import_year


def test_import_year_adds_a_published_year_and_deadlines_in_it_are_no_longer_estimated(tmp_path: Path) -> None:
    override = tmp_path / "calendar.json"
    stored = import_year(a_2027_schedule(), override)
    assert stored.year == 2027 and stored.published == date(2026, 11, 10)

    calendar = BusinessCalendar.load(override)
    assert 2027 in calendar.known_years
    assert calendar.is_workday(date(2027, 10, 9))  # the test schedule's make-up Saturday
    assert calendar.add_business_days(date(2027, 9, 28), 3) == (date(2027, 10, 8), False)
    assert "override(2027)" in calendar.data_version


def test_import_year_reads_a_json_file_and_json_text(tmp_path: Path) -> None:
    source = tmp_path / "2027.json"
    source.write_text(json.dumps(a_2027_schedule()), encoding="utf-8")
    override = tmp_path / "calendar.json"
    import_year(source, override)
    import_year(json.dumps(a_2027_schedule(makeup_workdays=[])), override, replace=True)
    calendar = BusinessCalendar.load(override)
    assert not calendar.is_workday(date(2027, 10, 9))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"makeup_workdays": ["2027-09-27"]}, "must be a Saturday or Sunday: 2027-09-27 (Monday)"),
        ({"makeup_workdays": ["2026-12-26"]}, "make-up working days outside 2027: 2026-12-26"),
        ({"makeup_workdays": ["2027-10-02"]}, "both as a holiday and as a make-up working day: 2027-10-02"),
        ({"holidays": ["2027-02-08", "2027-02-09"]}, "the fixed public holidays are missing: 2027-01-01"),
        ({"holidays": ["2027-13-01"]}, "holidays.0"),
        ({"published": None}, "published"),
        ({"source": ""}, "source"),
    ],
)
def test_import_year_refuses_implausible_data_with_a_clear_message_and_changes_nothing(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    override = tmp_path / "calendar.json"
    with pytest.raises(CalendarDataError, match="refused") as refused:
        import_year(a_2027_schedule(**overrides), override)
    assert message in str(refused.value)
    assert not override.exists()


def test_import_year_will_not_overwrite_a_year_unless_asked(tmp_path: Path) -> None:
    override = tmp_path / "calendar.json"
    import_year(a_2027_schedule(), override)
    with pytest.raises(CalendarDataError, match="already in"):
        import_year(a_2027_schedule(), override)
    import_year(a_2027_schedule(published="2026-11-20"), override, replace=True)
    schedule = BusinessCalendar.load(override).schedule(2027)
    assert schedule is not None and schedule.published == date(2026, 11, 20)


def test_an_override_year_replaces_the_shipped_one(tmp_path: Path) -> None:
    shipped = BusinessCalendar.load().schedule(2026)
    assert shipped is not None
    corrected = shipped.model_dump(mode="json") | {"holidays": [*shipped.holidays, date(2026, 12, 31)]}
    corrected["source"] = "a correction notice"
    corrected["published"] = "2026-12-01"
    override = tmp_path / "calendar.json"
    import_year(corrected, override)
    calendar = BusinessCalendar.from_settings(Settings(calendar_data_path=override))
    assert not calendar.is_workday(date(2026, 12, 31))


def test_a_malformed_override_file_stops_the_calendar_from_loading(tmp_path: Path) -> None:
    override = tmp_path / "calendar.json"
    override.write_text('{"format": 1, "years": [{"year": 2027}]}', encoding="utf-8")
    with pytest.raises(CalendarDataError):
        BusinessCalendar.load(override)


def test_a_missing_override_file_means_no_imported_year(tmp_path: Path) -> None:
    calendar = BusinessCalendar.load(tmp_path / "not-yet.json")
    assert calendar.known_years[-1] == 2026


# ---------------------------------------------------------------------------------------------- the activity


async def test_activity_returns_the_end_of_the_last_business_day_in_china_as_utc(calendar: BusinessCalendar) -> None:
    start = datetime(2026, 9, 30, 10, 0, tzinfo=CHINA)
    result = await ActivityEnvironment().run(
        CalendarActivities(calendar).business_deadline, BusinessDeadline(start=start, business_days=20)
    )
    assert result.last_day == date(2026, 11, 3)
    assert result.at == datetime(2026, 11, 3, 15, 59, 59, 999999, tzinfo=UTC)
    assert result.at.utcoffset() == timedelta(0)
    assert result.estimated is False


async def test_activity_counts_from_the_china_date_not_the_utc_date(calendar: BusinessCalendar) -> None:
    # 20:00 UTC on 30 Sep is already 04:00 on 1 Oct in China: counting starts on 2 Oct.
    start = datetime(2026, 9, 30, 20, 0, tzinfo=UTC)
    result = await ActivityEnvironment().run(
        CalendarActivities(calendar).business_deadline, BusinessDeadline(start=start, business_days=20)
    )
    assert result.last_day == date(2026, 11, 3)
    start = datetime(2026, 10, 9, 17, 0, tzinfo=UTC)  # Sat 10 Oct 01:00 in China
    result = await ActivityEnvironment().run(
        CalendarActivities(calendar).business_deadline, BusinessDeadline(start=start, business_days=1)
    )
    assert result.last_day == date(2026, 10, 12)


async def test_activity_scales_the_interval_from_start(calendar: BusinessCalendar) -> None:
    start = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
    result = await ActivityEnvironment().run(
        CalendarActivities(calendar).business_deadline,
        BusinessDeadline(start=start, business_days=20, scale=1 / 8640),
    )
    raw = datetime(2026, 11, 3, 15, 59, 59, 999999, tzinfo=UTC) - start  # 34 days 14 h, less a microsecond
    assert abs(result.at - (start + raw / 8640)) <= timedelta(microseconds=1)
    assert timedelta(seconds=345) < result.at - start < timedelta(seconds=346)
    assert result.last_day == date(2026, 11, 3)


async def test_activity_flags_an_estimated_deadline_and_says_why(calendar: BusinessCalendar) -> None:
    start = datetime(2026, 12, 15, 9, 0, tzinfo=CHINA)
    result = await ActivityEnvironment().run(
        CalendarActivities(calendar).business_deadline, BusinessDeadline(start=start, business_days=20)
    )
    assert result.estimated is True
    assert result.last_day == date(2027, 1, 13)
    assert "estimated" in result.note and "2004–2026" in result.note


async def test_activity_refuses_an_absurd_request_without_retrying(calendar: BusinessCalendar) -> None:
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            CalendarActivities(calendar).business_deadline,
            BusinessDeadline(start=datetime(2026, 1, 5, tzinfo=UTC), business_days=100_000),
        )
    assert refused.value.non_retryable


def test_activities_lists_the_bound_activity(calendar: BusinessCalendar) -> None:
    acts = CalendarActivities(calendar).activities()
    assert [a.__temporal_activity_definition.name for a in acts] == ["business_deadline"]
