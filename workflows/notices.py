"""What the applicant and support are told at each step. Pure text, no personal data beyond the order id."""

from __future__ import annotations

from dataclasses import dataclass

from models.stages import Stage


@dataclass(frozen=True)
class Text:
    template: str
    subject: str
    body: str


def stage_entered(order_id: str, stage: Stage, detail: str = "") -> Text:
    lines = {
        Stage.DOCUMENT_COLLECTION: "Please upload the documents your change needs.",
        Stage.CONFIRMATION: "Your documents passed the checks. Please confirm the information in the order.",
        Stage.INITIAL_REVIEW: "Your order is with the provider's reviewers (usually 1–2 business days).",
        Stage.SMS_VERIFICATION: (
            "Your order was submitted to the communications administration. A 6-digit code from 12381 was "
            "texted to the person in charge: enter it within 24 hours."
        ),
        Stage.ADMINISTRATION_REVIEW: (
            "SMS verification done. The communications administration reviews the order within 20 business days."
        ),
        Stage.CORRECTION: "Your order needs a correction before it can go on.",
        Stage.COMPLETED: "Your ICP filing modification was approved and the filing record is updated.",
        Stage.INVALID: "Your order cannot be processed as placed.",
        Stage.ABANDONED: "Your modification order was abandoned. Your filing on record is unchanged.",
    }
    body = lines.get(stage, f"Your order is now at stage {stage.value}.")
    if detail:
        body = f"{body}\n\n{detail}"
    return Text(
        template=f"stage.{stage.value}",
        subject=f"ICP filing modification {order_id}: {stage.value.replace('_', ' ')}",
        body=f"Order {order_id}\n\n{body}",
    )


def reminder(order_id: str, missing: list[str], n: int) -> Text:
    return Text(
        template="reminder.documents",
        subject=f"Reminder {n}: documents missing for ICP order {order_id}",
        body=f"Order {order_id} still needs: {', '.join(missing)}.",
    )


def documents_returned(order_id: str, failures: list[tuple[str, str]]) -> Text:
    detail = "\n".join(f"- {key}: {reason}" for key, reason in failures)
    return Text(
        template="documents.returned",
        subject=f"ICP order {order_id}: documents returned",
        body=f"Order {order_id}: these documents did not pass the authenticity checks:\n{detail}",
    )


def paused(order_id: str, reason: str) -> Text:
    return Text(
        template="order.paused",
        subject=f"ICP order {order_id} is paused",
        body=f"Order {order_id} is paused: {reason}. Support will contact you to resume it.",
    )


def support_alert(order_id: str, what: str, detail: str) -> Text:
    return Text(template=f"support.{what}", subject=f"[icpflow] {what}: order {order_id}", body=detail)
