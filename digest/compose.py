"""Compose: an edition's frozen items -> stories -> one subscriber's Edition. Pure.

Two steps, so the expensive one runs once per edition and the cheap one once per section set:
``build_stories`` clusters the edition's items into stories (the same story from several feeds
becomes one, under its earliest source) and finds "read also" links; ``compose`` keeps the
subscriber's sections, orders sections as configured, groups by local day (newest first), newest
story first, and caps each section.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from digest import cluster
from digest.model import DayGroup, Edition, Item, SectionGroup, Story


@dataclass(frozen=True, slots=True)
class ComposeOptions:
    title: str
    section_order: tuple[str, ...]
    max_per_section: int = 10
    top_stories: int = 0  # 0: no "Top stories" block
    language: str = "en"
    cluster_threshold: float | None = None  # None: cluster's tuned default
    read_also_lower: float = 0.2
    read_also_max: int = 2


@dataclass(frozen=True, slots=True)
class PlacedStory:
    story: Story
    section: str


def section_anchor(name: str) -> str:
    """A stable HTML id for a section, also for names with no ASCII letters."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"s-{slug}" if slug else "s-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def build_stories(items: Sequence[tuple[Item, str]], *, history: Sequence[Item] = (),
                  options: ComposeOptions) -> list[PlacedStory]:
    """Cluster an edition's (item, section) pairs into stories placed in their lead's section."""
    only_items = [item for item, _ in items]
    section_of = {item.id: section for item, section in items}
    kwargs = {} if options.cluster_threshold is None else {"threshold": options.cluster_threshold}
    groups = cluster.cluster(only_items, **kwargs)
    # "Read also" compares two items alone, on the scale cluster.pair_threshold() sets for that.
    upper = cluster.pair_threshold(options.cluster_threshold if options.cluster_threshold is not None
                                   else cluster.DEFAULT_THRESHOLD)
    placed = []
    for group in groups:
        lead = only_items[group[0]]
        also = tuple(only_items[i] for i in group[1:])
        read_also: tuple[Item, ...] = ()
        if history and options.read_also_max:
            hits = cluster.related(history, lead, lower=options.read_also_lower, upper=upper)
            read_also = tuple(history[i] for i in hits[: options.read_also_max])
        placed.append(PlacedStory(Story(lead=lead, also=also, read_also=read_also), section_of[lead.id]))
    return placed


def _local_day(item: Item, zone: ZoneInfo) -> date:
    return item.when.astimezone(zone).date()


def compose(stories: Sequence[PlacedStory], *, day: date, timezone: str, chosen: Collection[str] | None,
            options: ComposeOptions, web_url: str) -> Edition:
    """One subscriber's edition: their sections only (None: all), in configured order."""
    zone = ZoneInfo(timezone)
    wanted = [s for s in stories if chosen is None or s.section in chosen]
    top: tuple[Story, ...] = ()
    # The stories most outlets tell, most first (then the newest): the top block, and the subject's lead.
    multi = [s for s in wanted if s.story.outlets > 1]
    multi.sort(key=lambda s: (-s.story.outlets, -s.story.lead.when.timestamp(), s.story.lead.id))
    lead_story = multi[0].story if multi else None
    if options.top_stories:
        top = tuple(s.story for s in multi[: options.top_stories])
        top_ids = {s.lead.id for s in top}
        wanted = [s for s in wanted if s.story.lead.id not in top_ids]  # shown once, in the top block

    by_section: dict[str, list[Story]] = {}
    for placed in wanted:
        by_section.setdefault(placed.section, []).append(placed.story)
    order = list(options.section_order) + sorted(set(by_section) - set(options.section_order))

    groups = []
    for name in order:
        section_stories = by_section.get(name)
        if not section_stories:
            continue
        section_stories.sort(key=lambda s: (-s.lead.when.timestamp(), s.lead.id))
        shown = section_stories[: options.max_per_section]
        days: dict[date, list[Story]] = {}
        for story in shown:
            days.setdefault(_local_day(story.lead, zone), []).append(story)
        groups.append(SectionGroup(
            name=name, anchor=section_anchor(name),
            days=tuple(DayGroup(day=d, stories=tuple(days[d])) for d in sorted(days, reverse=True)),
            total=len(section_stories), shown=len(shown),
        ))
    return Edition(title=options.title, day=day, timezone=timezone, sections=tuple(groups), web_url=web_url,
                   top_stories=top, language=options.language, lead_story=lead_story)
