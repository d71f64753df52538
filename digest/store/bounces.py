"""Bounces and complaints as recorded outcomes, and what they do to a subscription.

A hard bounce suspends the subscriber and suppresses the address at once; a complaint too (a
reader who pressed "spam" must get nothing more); soft bounces add up in a score that halves
every `half_life` (Mailman's bounce score, with a smooth decay instead of its reset) and suspend
at `threshold`. Each outcome is written once: `dedupe` is unique, and a repeat changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.store import schema as t
from digest.store.base import StoreBase
from digest.store.subscribers import ACTIVE, DELIVERY, SUSPENDED, _suppress, address_hash

# What record_bounce did, for the caller's report and the metrics.
RECORDED = "recorded"  # counted against the subscriber; nothing more happened
SUPPRESSED = "suppressed"  # this one suspended the subscriber and suppressed the address
DUPLICATE = "duplicate"  # the same outcome was recorded before
UNVERIFIED = "unverified"  # the token did not verify (or named nobody): kept as a count only
REASONS = {"hard": "bounced", "soft": "bounced", "complaint": "complained"}


@dataclass(frozen=True, slots=True)
class BounceSummary:
    """`digest status` and /metrics: verified outcomes by kind, unverified ones, suppressions by reason."""

    by_kind: dict[str, int]
    unverified: int
    suppressed: dict[str, int]


def decayed(score: float, since: datetime | None, now: datetime, half_life: timedelta) -> float:
    if since is None or score <= 0:
        return max(score, 0.0)
    elapsed = max((now - since).total_seconds(), 0.0)
    return float(score * 0.5 ** (elapsed / half_life.total_seconds()))


class BounceStore(StoreBase):
    def record_bounce(
        self,
        *,
        dedupe: str,
        subscriber_id: int | None,
        edition_id: int | None,
        kind: str,
        status: str | None,
        diagnostic: str | None,
        via: str,
        now: datetime,
        threshold: float,
        half_life: timedelta,
    ) -> str:
        """Write one outcome and apply it; RECORDED, SUPPRESSED, DUPLICATE or UNVERIFIED."""
        verified = subscriber_id is not None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.bounces).values(
                        dedupe=dedupe,
                        subscriber_id=subscriber_id,
                        edition_id=edition_id if verified else None,
                        kind=kind,
                        status=status if verified else None,
                        diagnostic=diagnostic if verified else None,
                        verified=verified,
                        via=via,
                        received_at=now,
                    )
                )
                if not verified:
                    return UNVERIFIED
                row = conn.execute(select(t.subscribers).where(t.subscribers.c.id == subscriber_id)).first()
                if row is None:
                    return RECORDED
                suppress = kind in ("hard", "complaint")
                if kind == "soft":
                    score = decayed(row.bounce_score, row.bounce_score_at, now, half_life) + 1.0
                    conn.execute(
                        update(t.subscribers)
                        .where(t.subscribers.c.id == row.id)
                        .values(bounce_score=score, bounce_score_at=now)
                    )
                    suppress = score >= threshold
                if not suppress:
                    return RECORDED
                _suppress(conn, row.email, REASONS[kind], now)
                if row.status == ACTIVE:
                    conn.execute(
                        update(t.subscribers)
                        .where(t.subscribers.c.id == row.id)
                        .values(status=SUSPENDED, status_origin=DELIVERY, updated_at=now)
                    )
                return SUPPRESSED
        except IntegrityError:
            return DUPLICATE  # the unique dedupe key: this outcome is already recorded

    def bounce_summary(self) -> BounceSummary:
        with self.engine.connect() as conn:
            kinds = {
                str(k): int(n)
                for k, n in conn.execute(
                    select(t.bounces.c.kind, func.count())
                    .where(t.bounces.c.verified.is_(True))
                    .group_by(t.bounces.c.kind)
                )
            }
            unverified = int(
                conn.scalar(select(func.count()).select_from(t.bounces).where(t.bounces.c.verified.is_(False))) or 0
            )
            reasons = {
                str(r): int(n)
                for r, n in conn.execute(
                    select(t.suppressions.c.reason, func.count()).group_by(t.suppressions.c.reason)
                )
            }
        return BounceSummary(kinds, unverified, reasons)

    def suppression_reason(self, email: str) -> tuple[str, datetime] | None:
        """Why and since when an address is suppressed, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.suppressions.c.reason, t.suppressions.c.created_at).where(
                    t.suppressions.c.email_hash == address_hash(email)
                )
            ).first()
        return (row.reason, row.created_at) if row else None

    def last_bounce(self, subscriber_id: int) -> tuple[str, str | None, str | None, datetime] | None:
        """(kind, status, diagnostic, received_at) of the subscriber's latest recorded bounce."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.bounces.c.kind, t.bounces.c.status, t.bounces.c.diagnostic, t.bounces.c.received_at)
                .where(t.bounces.c.subscriber_id == subscriber_id)
                .order_by(t.bounces.c.received_at.desc(), t.bounces.c.id.desc())
                .limit(1)
            ).first()
        return (row.kind, row.status, row.diagnostic, row.received_at) if row else None

    def bounce_score(self, subscriber_id: int, *, now: datetime, half_life: timedelta) -> float:
        """The subscriber's soft-bounce score as it stands now (decayed since the last soft bounce)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.subscribers.c.bounce_score, t.subscribers.c.bounce_score_at).where(
                    t.subscribers.c.id == subscriber_id
                )
            ).first()
        return decayed(row.bounce_score, row.bounce_score_at, now, half_life) if row else 0.0
