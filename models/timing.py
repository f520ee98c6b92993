"""One timing policy per order: every duration the workflow waits on. Production defaults; a compressed demo profile."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DURATION = timedelta(days=365)


class TimingPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Document collection: remind the applicant every `reminder_interval`; pause after `collection_idle_limit`
    # without any upload.
    reminder_interval: timedelta = timedelta(days=2)
    collection_idle_limit: timedelta = timedelta(days=14)
    # The applicant's confirmation (an idle order is paused the same way).
    confirmation_idle_limit: timedelta = timedelta(days=7)
    # Provider initial review: escalate after this many business days.
    initial_review_business_days: int = Field(default=2, ge=1, le=60)
    # MIIT SMS verification window.
    sms_window: timedelta = timedelta(hours=24)
    # Administration review: legal limit in business days, then overdue.
    review_business_days: int = Field(default=20, ge=1, le=60)
    # How often the regulator is asked for a verdict (retry interval of one long-lived poll activity).
    review_poll_interval: timedelta = timedelta(hours=1)
    # After approval the record update is retried until the provider's system shows it.
    record_update_retry: timedelta = timedelta(minutes=5)
    # An outside party that does not answer within `dependency_patience` shows up in the order's state as a
    # dependency wait; support is alerted once it has been down for `dependency_alert_after`.
    dependency_patience: timedelta = timedelta(minutes=2)
    dependency_alert_after: timedelta = timedelta(minutes=30)
    # Business-day deadlines are computed on China's calendar, then scaled (1.0 in production; demos compress).
    business_day_scale: float = Field(default=1.0, gt=0, le=1.0)

    @model_validator(mode="after")
    def _sane_durations(self) -> TimingPolicy:
        """Every duration is positive and at most a year: a caller's typo must not make a timer that never fires
        or fires at once."""
        for name, value in self:
            if isinstance(value, timedelta) and not timedelta(0) < value <= MAX_DURATION:
                raise ValueError(f"timing.{name} must be more than 0 and at most 365 days, got {value}")
        return self

    @classmethod
    def compressed(cls) -> TimingPolicy:
        """The demo profile: a whole order in about a minute of wall-clock time."""
        return cls(
            reminder_interval=timedelta(seconds=20),
            collection_idle_limit=timedelta(minutes=5),
            confirmation_idle_limit=timedelta(minutes=5),
            sms_window=timedelta(minutes=2),
            review_poll_interval=timedelta(seconds=1),
            record_update_retry=timedelta(seconds=1),
            dependency_patience=timedelta(seconds=20),
            dependency_alert_after=timedelta(minutes=1),
            business_day_scale=1 / 8640,  # one calendar day becomes 10 seconds
        )
