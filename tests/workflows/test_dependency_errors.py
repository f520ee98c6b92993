"""How a dependency wait names its error and its party: pure functions of the error chain the SDK hands the workflow
(ActivityError → TimeoutError → the adapter's ApplicationError → whatever it chained)."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError, TimeoutType

from workflows.order import _cause, _database_down


def timed_out(*chain: BaseException) -> ActivityError:
    """An activity whose retries ran out of time, the last attempt having failed with ``chain`` (outermost first)."""
    err = ActivityError(
        "Activity task timed out",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="validate_order",
        activity_id="1",
        retry_state=RetryState.TIMEOUT,
    )
    links = [
        TimeoutError("activity ScheduleToClose timeout", type=TimeoutType.SCHEDULE_TO_CLOSE, last_heartbeat_details=[]),
        *chain,
    ]
    for outer, inner in zip([err, *links], links, strict=False):
        outer.__cause__ = inner
    return err


def test_wait_shows_the_adapters_own_message_not_the_socket_error_it_chained() -> None:
    adapter = ApplicationError("RDAP https://rdap.test/domain/x.cn: ReadTimeout: timed out", type="RdapUnavailable")
    socket = ApplicationError("", type="ReadTimeout")
    assert _cause(timed_out(adapter, socket)).endswith("RDAP https://rdap.test/domain/x.cn: ReadTimeout: timed out")
    refused = ApplicationError("[Errno 111] Connection refused", type="ConnectionRefusedError")
    shown = _cause(timed_out(ApplicationError("could not reach RDAP", type="RdapUnavailable"), refused))
    assert shown.endswith("could not reach RDAP") and "Errno" not in shown


def test_wait_shows_the_innermost_timeout_when_no_error_says_more() -> None:
    hung = TimeoutError("activity StartToClose timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
    assert _cause(timed_out(hung)) == "activity StartToClose timeout"
    assert _cause(timed_out(ApplicationError("", type="ReadTimeout"))) == "ReadTimeout"


def test_a_notice_failing_on_the_outbox_database_is_a_database_outage_and_smtp_is_not() -> None:
    outbox = ApplicationError(
        "could not claim outbox stage:x/email of order o-1: the app database is unreachable (OSError: refused)",
        type="DatabaseUnavailable",
    )
    assert _database_down(timed_out(outbox))
    smtp = ApplicationError("notification stage:x of order o-1 not delivered yet (email: 451)")
    assert not _database_down(timed_out(smtp))
