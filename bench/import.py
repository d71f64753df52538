"""Time the real `digest subscribers import` of a large CSV (issue 10: all or nothing, 200,000 rows).

    python bench/import.py                    # 200,000 new rows into a fresh SQLite file
    python bench/import.py --rows 50000       # fewer
    python bench/import.py --again            # and import the same file a second time (all updates)

The CSV is generated (fixed seed): email, a name, 0-3 of the default sections, a time zone for one
row in five. The command runs as a process (`python -m digest --config X subscribers import F`);
the figure is its wall time, interpreter start-up included, and rows per second.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECTIONS = ("World", "Sport", "Business & Economy", "Science & Space")
ZONES = ("Europe/Moscow", "America/New_York", "Asia/Tokyo")


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(10)
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,sections,timezone\n")
        for i in range(rows):
            sections = ";".join(rnd.sample(SECTIONS, rnd.randint(0, 3)))
            zone = rnd.choice(ZONES) if rnd.random() < 0.2 else ""
            f.write(f"reader{i:07d}@example.org,Reader {i},{sections},{zone}\n")


def run(config: Path, csv_path: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), "subscribers", "import", str(csv_path)],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"import failed: {result.stderr}")
    print(f"  {result.stdout.strip()}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--again", action="store_true", help="import the same file again (every row an update)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digest-import-") as tmp:
        folder = Path(tmp)
        config = folder / "digest.toml"
        sections = "".join(f'[[sections]]\nname = "{s}"\n' for s in SECTIONS)
        config.write_text(f'[digest]\ndatabase = "sqlite:///{folder / "digest.sqlite"}"\n{sections}', encoding="utf-8")
        csv_path = folder / "roster.csv"
        write_csv(csv_path, args.rows)
        print(f"{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB CSV")
        took = run(config, csv_path)
        print(f"import (new rows): {took:.1f} s wall, {args.rows / took:,.0f} rows/s")
        if args.again:
            took = run(config, csv_path)
            print(f"import (same rows again): {took:.1f} s wall, {args.rows / took:,.0f} rows/s")


if __name__ == "__main__":
    main()
