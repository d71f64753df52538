"""Confirmed opt-in: how many confirmation emails went out, and the confirmation itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from digest.model import Subscriber
from digest.store import schema as t
from digest.store.base import StoreBase
from digest.store.subscribers import ACTIVE, SUBSCRIBER, _is_address, _new_address, _subscriber, address_hash

KEEP_SENDS = timedelta(days=1)  # longer than any window worth setting; older rows are pruned


class SignupStore(StoreBase):
    def claim_confirmation(self, email: str, *, now: datetime, window: timedelta, hourly_cap: int) -> bool:
        """True, and the send counted, when a confirmation may go to `email` now: none went to it
        within `window`, and fewer than `hourly_cap` went out in the last hour in all. `email` is
        whatever the caller counts by (the web app: the mailbox, `addresses.mailbox`); only its
        hash is kept."""
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
    ) -> tuple[Subscriber | None, bool]:
        """The person confirmed from their own inbox: active, with what they chose, as their own
        choice. This is the one way a suppressed address is mailed again (issue 9).

        (subscriber, applied); the subscriber is None when there is none (a spent link of an
        erased address). A link is spent, and nothing changes, when it was issued at or before
        the newest confirmation applied (this one used already, or one made after it: a newer
        request is never undone by an older one), or before the address last stopped (an
        unsubscribe, a failure, an erasure, which outlives the row in the suppression). Nothing
        else spends it: a row changed for another reason (an earlier sign-up confirmed later, a
        config edit, a failure counted) still takes a newer request (U7).
        """
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
        digest = address_hash(email)
        with self.engine.begin() as conn:
            row = conn.execute(select(t.subscribers).where(_is_address(email))).first()
            suppression = t.suppressions.c
            stopped = conn.scalar(select(suppression.signups_spent_at).where(suppression.email_hash == digest))
            spent = [at for at in (row.signups_spent_at if row is not None else None, stopped) if at is not None]
            if any(issued <= at for at in spent):
                return (_subscriber(row) if row is not None else None), False
            values["signups_spent_at"] = issued
            conn.execute(delete(t.suppressions).where(t.suppressions.c.email_hash == digest))
            if row is None:
                conn.execute(
                    insert(t.subscribers).values(
                        **_new_address(email), created_at=now, from_config=False, name_origin=SUBSCRIBER, **values
                    )
                )
            else:
                conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(**values))
            found = conn.execute(select(t.subscribers).where(_is_address(email))).first()
        assert found is not None
        return _subscriber(found), True
