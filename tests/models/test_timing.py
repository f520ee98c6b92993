"""The timing policy refuses durations that would break an order's timers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from models.identifiers import check_mobile
from models.messages import SmsEventKind, SmsVerificationEvent
from models.order import FilingNumber
from models.timing import TimingPolicy


@pytest.mark.parametrize("value", [timedelta(seconds=-5), timedelta(0), timedelta(days=99_999_999)])
def test_a_duration_must_be_positive_and_at_most_a_year(value: timedelta) -> None:
    with pytest.raises(ValidationError, match=r"timing\.sms_window"):
        TimingPolicy(sms_window=value)


def test_the_production_and_demo_profiles_are_valid() -> None:
    assert TimingPolicy().sms_window == timedelta(hours=24)
    assert TimingPolicy.compressed().sms_window < TimingPolicy().sms_window


def test_r_fmt_1_full_width_digits_are_not_a_filing_number_or_an_sms_code() -> None:
    with pytest.raises(ValueError, match="R-FMT-1"):
        FilingNumber.parse("京ICP备１０００００４３号-1")
    with pytest.raises(ValidationError):
        SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code="１２３４５６")
    assert check_mobile("１３８００１３８０００", "mobile")
    assert not check_mobile("13800138000", "mobile")
