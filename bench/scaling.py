"""The N-machines table of docs/scaling.md: a model from measured unit costs, not a run on N machines.

    python bench/scaling.py                      # machines 1, 2, 4, 8; a database with 4 free cores
    python bench/scaling.py --machines 1,2,4,8,16 --db-cores 8

Inputs (each measured by `bench/workers.py` on this 2-core machine, recorded in docs/scaling.md,
"Measured"; override them to model other machines):

  per machine   msg/s of two workers on the machine's two cores (704 and 861 in two runs), and
                feeds/s from one worker with PostgreSQL on the same cores (202) to twice the best
                rate measured (233, two workers on these cores, taken as one core's: an upper end)
  per unit      PostgreSQL CPU per message sent (0.3-0.7 ms) and per feed polled (1.5-2 ms)

The model: N machines do N times one machine's work, until the database's cores are busy; the
work then grows no more. Printed for each N: messages/s and feeds/s (low-high), the database cores
that keeps busy, how long 1,000,000 subscribers take, and whether the database caps it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Costs:
    msgs_per_machine: tuple[float, float] = (704.0, 861.0)
    feeds_per_machine: tuple[float, float] = (202.0, 2 * 233.0)
    db_ms_per_message: tuple[float, float] = (0.3, 0.7)
    db_ms_per_feed: tuple[float, float] = (1.5, 2.0)


@dataclass(frozen=True)
class Row:
    machines: int
    msgs: tuple[float, float]
    db_cores_sending: tuple[float, float]
    million_minutes: tuple[float, float]
    feeds: tuple[float, float]
    db_cores_polling: tuple[float, float]
    capped: bool


def _capped(rate: float, ms_per_unit: float, db_cores: float) -> float:
    return min(rate, db_cores / (ms_per_unit / 1000))


def model(machines: int, costs: Costs, db_cores: float) -> Row:
    """Low ends pair the low rate with the low database cost, high ends the high with the high:
    the range a reader should expect, each end capped by what `db_cores` can carry."""
    msgs_raw = (machines * costs.msgs_per_machine[0], machines * costs.msgs_per_machine[1])
    feeds_raw = (machines * costs.feeds_per_machine[0], machines * costs.feeds_per_machine[1])
    msgs = (
        _capped(msgs_raw[0], costs.db_ms_per_message[0], db_cores),
        _capped(msgs_raw[1], costs.db_ms_per_message[1], db_cores),
    )
    feeds = (
        _capped(feeds_raw[0], costs.db_ms_per_feed[0], db_cores),
        _capped(feeds_raw[1], costs.db_ms_per_feed[1], db_cores),
    )
    db_sending = (msgs[0] * costs.db_ms_per_message[0] / 1000, msgs[1] * costs.db_ms_per_message[1] / 1000)
    db_polling = (feeds[0] * costs.db_ms_per_feed[0] / 1000, feeds[1] * costs.db_ms_per_feed[1] / 1000)
    return Row(
        machines,
        _sorted(msgs),
        _sorted(db_sending),
        _sorted((1_000_000 / msgs[0] / 60, 1_000_000 / msgs[1] / 60)),
        _sorted(feeds),
        _sorted(db_polling),
        msgs != msgs_raw or feeds != feeds_raw,
    )


def _sorted(pair: tuple[float, float]) -> tuple[float, float]:
    """A cap may turn an end round (a costly database carries fewer messages): low first."""
    return (min(pair), max(pair))


def table(rows: list[Row], db_cores: float) -> str:
    def span(pair: tuple[float, float], fmt: str) -> str:
        return f"{format(pair[0], fmt)}-{format(pair[1], fmt)}"

    lines = [
        "| machines (2 cores each) | msg/s | database cores busy sending | 1,000,000 subscribers take (min) "
        f"| feeds/s | database cores busy polling | capped by the database ({db_cores:g} cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.machines} | {span(r.msgs, ',.0f')} | {span(r.db_cores_sending, '.1f')} "
            f"| {span(r.million_minutes, '.1f')} | {span(r.feeds, ',.0f')} | {span(r.db_cores_polling, '.1f')} "
            f"| {'yes' if r.capped else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", default="1,2,4,8", help="numbers of machines, comma-separated")
    ap.add_argument("--db-cores", type=float, default=4.0, help="database cores free for digest")
    args = ap.parse_args()
    costs = Costs()
    print(table([model(int(n), costs, args.db_cores) for n in args.machines.split(",")], args.db_cores))
    print(
        f"\nthe database's capacity: {args.db_cores / (costs.db_ms_per_message[1] / 1000):,.0f}-"
        f"{args.db_cores / (costs.db_ms_per_message[0] / 1000):,.0f} msg/s, "
        f"{args.db_cores / (costs.db_ms_per_feed[1] / 1000):,.0f}-"
        f"{args.db_cores / (costs.db_ms_per_feed[0] / 1000):,.0f} feeds/s"
    )


if __name__ == "__main__":
    main()
