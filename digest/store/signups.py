"""Confirmed opt-in: how many confirmation emails went out, and the confirmation itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from digest.model import Subscriber
from digest.store import schema as t
from digest.store.base import StoreBase
from digest.store.subscribers import ACTIVE, SUBSCRIBER, _subscriber, address_hash, normalise_email

KEEP_SENDS = timedelta(days=1)  # longer than any window worth setting; older rows are pruned


class SignupStore(StoreBase):
    def claim_confirmation(self, email: str, *, now: datetime, window: timedelta, hourly_cap: int) -> bool:
        """True, and the send counted, when a confirmation may go to `email` now: none went to it
        within `window`, and fewer than `hourly_cap` went out in the last hour in all."""
        digest = address_hash(email)
        sends = t.confirmation_sends
        with self.engine.begin() as conn:
            conn.execute(delete(sends).where(sends.c.sent_at < now - max(KEEP_SENDS, window)))
            recent = conn.scalar(
                select(func.count())
                .select_from(sends)
                .where(sends.c.email_hash == digest, sends.c.sent_at > now - window)
            )
            if recent:
                return False
            hour = conn.scalar(
                select(func.count()).select_from(sends).where(sends.c.sent_at > now - timedelta(hours=1))
            )
            if (hour or 0) >= hourly_cap:
                return False
            conn.execute(insert(sends).values(email_hash=digest, sent_at=now))
            return True

    def confirm_subscription(
        self, email: str, *, sections: Sequence[str] | None, timezone: str | None, issued: datetime, now: datetime
    ) -> tuple[Subscriber, bool]:
        """The person confirmed from their own inbox: active, with what they chose, as their own
        choice. This is the one way a suppressed address is mailed again (issue 9).

        (subscriber, applied). A confirmation issued before the subscriber's last change is a
        replay (used already, or older than an unsubscribe since): nothing changes.
        """
        email = normalise_email(email)
        values = {
            "sections": list(sections) if sections is not None else None,
            "timezone": timezone,
            "status": ACTIVE,
            "sections_origin": SUBSCRIBER,
            "timezone_origin": SUBSCRIBER,
            "status_origin": SUBSCRIBER,
            "permanent_failures": 0,
            "bounce_score": 0.0,
            "bounce_score_at": None,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            row = conn.execute(select(t.subscribers).where(t.subscribers.c.email == email)).first()
            if row is not None and row.updated_at >= issued:
                return _subscriber(row), False
            conn.execute(delete(t.suppressions).where(t.suppressions.c.email_hash == address_hash(email)))
            if row is None:
                conn.execute(
                    insert(t.subscribers).values(
                        email=email, created_at=now, from_config=False, name_origin=SUBSCRIBER, **values
                    )
                )
            else:
                conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(**values))
            found = conn.execute(select(t.subscribers).where(t.subscribers.c.email == email)).first()
        assert found is not None
        return _subscriber(found), True
