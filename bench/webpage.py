"""Time the web edition page: the first GET renders it, later ones are served from what was kept.

    python bench/webpage.py                   # an edition of 32 feeds x 32 items (1,024 items)
    python bench/webpage.py --feeds 40 --items 50

The store is filled as bench/send.py fills it (8 sections, random titles and summaries, fixed
seed), one edition is built through the send job (`pipeline.send.build_edition`) and marked
sent, and the real web app (`digest.web.start_web`, aiohttp on 127.0.0.1) serves it. Printed:

  render once     wall and CPU time of the first GET, which renders the page
  8 at once, kept wall time of 8 concurrent GETs once the page is kept, and the CPU they cost
  8 at once, cold the same 8 concurrent GETs on a fresh app (nothing kept yet): one renders,
                  the others wait for it
  8 renders       what those 8 GETs cost before issue 12, when each rendered the page (8
                  renderings on the app's threads, as its handlers ran them)
  renders         how many times the page was rendered over all of the above (EditionPages.rendered)
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import send as fixture  # bench/send.py: the same store fixture

from digest import config as cfg
from digest.model import Mark
from digest.pipeline.send import build_edition
from digest.store import SENT, Store
from digest.web import SITE, listening, start_web


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def gets(url: str, n: int) -> float:
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.get(url) as resp:
                assert resp.status == 200, resp.status
                await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - started


async def run(settings: cfg.Settings, store: Store, path: str) -> None:
    runner = await start_web(settings, store, host="127.0.0.1", port=0)
    pages = runner.app[SITE].editions
    url = listening(runner)[0] + path
    try:
        c0 = cpu()
        first = await gets(url, 1)
        c1 = cpu()
        kept = await gets(url, 8)
        c2 = cpu()
        print(f"render once      {first * 1000:8.0f} ms wall  {(c1 - c0) * 1000:8.0f} ms CPU")
        print(f"8 at once, kept  {kept * 1000:8.0f} ms wall  {(c2 - c1) * 1000:8.0f} ms CPU")
        renders = pages.rendered
    finally:
        await runner.cleanup()
    runner = await start_web(settings, store, host="127.0.0.1", port=0)
    cold_pages = runner.app[SITE].editions
    url = listening(runner)[0] + path
    try:
        c0 = cpu()
        cold = await gets(url, 8)
        c1 = cpu()
        print(f"8 at once, cold  {cold * 1000:8.0f} ms wall  {(c1 - c0) * 1000:8.0f} ms CPU")
        edition = store.list_editions()[0]
        c0, started = cpu(), time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(cold_pages._render, edition) for _ in range(8)))
        c1, took = cpu(), time.perf_counter() - started
        print(f"8 renders        {took * 1000:8.0f} ms wall  {(c1 - c0) * 1000:8.0f} ms CPU")
    finally:
        await runner.cleanup()
    print(f"renders          {renders} (first app), {cold_pages.rendered} (second app)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=32)
    parser.add_argument("--items", type=int, default=32, help="items per feed")
    args = parser.parse_args()
    fixture.MIXES["web"] = (args.feeds, args.items, None)  # every story of a section is on the page
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = fixture.write_config(folder, port=9, workers=1, mix="web")
        fixture.populate(config, 50, mix="web")  # some in every zone: the edition goes to somebody
        settings = cfg.load(config)
        store = Store(settings.database_url)
        tz = settings.digest.timezone
        edition, _ = build_edition(settings, store, day=fixture.NOW.date(), timezone=tz, now=fixture.NOW)
        session = store.outbox_session("bench")
        rows = session.claim(edition.id, now=fixture.NOW, lease=timedelta(minutes=5), limit=1000)
        session.record([Mark(d.id, SENT, message_id=f"<b{d.id}@x>") for d in rows], now=fixture.NOW)
        session.close()
        items = len(store.edition_items(edition.id))
        print(f"edition of {items} items ({args.feeds} feeds x {args.items})")
        asyncio.run(run(settings, store, f"/editions/{tz.replace('/', '~')}/{edition.day.isoformat()}"))
        store.close()


if __name__ == "__main__":
    main()
