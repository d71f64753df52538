"""Compose: an edition's frozen items -> stories -> one subscriber's Edition. Pure.

Two steps, so the expensive one runs once per edition and the cheap one once per section set:
``build_stories`` clusters the edition's items into stories (the same story from several feeds
becomes one, under its earliest source) and finds "read also" links; ``compose`` keeps the
subscriber's sections, orders sections as configured, orders each section's stories by how many
outlets carry them, then newest first, caps each section and each outlet within it, and groups the
shown stories by local day (newest first). Titles lose their feed's boilerplate (digest.titles).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from digest import cluster, synopsis, titles
from digest.model import DayGroup, Edition, Item, PressGroup, Quote, SectionGroup, Story
from digest.outlets import linked_site


@dataclass(frozen=True, slots=True)
class ComposeOptions:
    title: str
    section_order: tuple[str, ...]
    max_per_section: int = 10
    section_limits: tuple[tuple[str, int], ...] = ()  # (section, its own max_per_section) where it has one
    top_stories: int = 0  # 0: no "Top stories" block
    language: str = "en"
    cluster_threshold: float | None = None  # None: cluster's tuned default
    read_also_lower: float = 0.2
    read_also_max: int = 2
    max_per_source: int = 3  # stories of one outlet per section before "N more in <Section>"
    synopsis_sentences: int = synopsis.DEFAULT_SENTENCES  # 0: no synopses
    plural_outlets: frozenset[str] = frozenset()  # outlet names that are grammatically plural
    press_outlets: tuple[str, ...] = ()  # feeds marked press = true, by display name, in config order
    press_section: str = "Press Review"
    press_stories: int = 3  # leading stories per outlet in the Press Review section
    press_sentences: int = 2
    subject_style: str = "headline"
    outlet_names: tuple[tuple[str, str], ...] = ()  # [outlets]: (site, name) an aggregator's items are cited by


@dataclass(frozen=True, slots=True)
class PlacedStory:
    story: Story
    section: str


def section_anchor(name: str) -> str:
    """A stable HTML id for a section, also for names with no ASCII letters."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"s-{slug}" if slug else "s-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def build_stories(
    items: Sequence[tuple[Item, str]],
    *,
    history: Sequence[Item] = (),
    background: Sequence[Item] = (),
    options: ComposeOptions,
) -> list[PlacedStory]:
    """Cluster an edition's (item, section) pairs into stories placed in their lead's section;
    `background`: earlier items, which weigh how common each word is (`cluster.cluster`)."""
    names = dict(options.outlet_names)
    items = [(as_written(item, names), section) for item, section in without_boilerplate(items)]
    only_items = [item for item, _ in items]
    section_of = {item.id: section for item, section in items}
    threshold = cluster.DEFAULT_THRESHOLD if options.cluster_threshold is None else options.cluster_threshold
    # The background read as the edition's items are: without their feeds' title boilerplate.
    earlier = [as_written(item, names) for item, _ in without_boilerplate([(item, "") for item in background])]
    groups = cluster.cluster(only_items, threshold=threshold, background=earlier)
    # "Read also" compares two items alone, on the scale cluster.pair_threshold() sets for that.
    upper = cluster.pair_threshold(
        options.cluster_threshold if options.cluster_threshold is not None else cluster.DEFAULT_THRESHOLD
    )
    placed = []
    for group in groups:
        lead, also, told = tell([only_items[i] for i in group], options)
        read_also: tuple[Item, ...] = ()
        if history and options.read_also_max:
            hits = cluster.related(history, lead, lower=options.read_also_lower, upper=upper)
            read_also = tuple(history[i] for i in hits[: options.read_also_max])
        placed.append(PlacedStory(Story(lead=lead, also=also, read_also=read_also, synopsis=told), section_of[lead.id]))
    return placed


def tell(members: Sequence[Item], options: ComposeOptions) -> tuple[Item, tuple[Item, ...], tuple[Quote, ...]]:
    """One story's reports (earliest first) as the edition tells them: its lead, the others, and
    the synopsis (none for a story of one report).

    The lead is the report that tells the story best, not the first flash (`cluster.representative`);
    the others follow earliest first. When that is a later report, the synopsis cites its outlet
    first, as an agency's press review cites its main source ("Reuters reports ..., Le Parisien
    adds ..."), rather than last under its own headline; otherwise the sentences' centrality
    orders the outlets, so a lead outlet with a weaker sentence does not push the story's central
    one out.
    """
    others = list(members)
    k = cluster.representative(members)
    lead = others.pop(k)
    if not others:
        return lead, (), ()
    told = synopsis.synopsis(
        (lead, *others),
        limit=options.synopsis_sentences,
        plural=options.plural_outlets,
        first_outlet=lead.source if k else None,
    )
    return lead, tuple(others), told


STORIES_FORMAT = 1  # the version of stories_to_json's layout; another version is clustered again


def stories_to_json(stories: Sequence[PlacedStory]) -> str:
    """An edition's stories as JSON, to store with the edition: item ids (the items are stored
    already), titles where digest.titles cleaned them, and the synopses' quoted sentences."""
    out = []
    for placed in stories:
        story = placed.story
        members = (story.lead, *story.also, *story.read_also)
        out.append(
            {
                "section": placed.section,
                "lead": story.lead.id,
                "also": [i.id for i in story.also],
                "read_also": [i.id for i in story.read_also],
                "titles": {str(i.id): i.title for i in members},
                # The gaps only where a quote has some: an edition stored before them reads back the same.
                "synopsis": [
                    [q.source, q.url, q.item_id, list(q.sentences), q.plural, *([list(q.gaps)] if q.gaps else [])]
                    for q in story.synopsis
                ],
            }
        )
    return json.dumps({"format": STORIES_FORMAT, "stories": out}, ensure_ascii=False, separators=(",", ":"))


def stories_from_json(
    body: str, items: Sequence[Item], history: Sequence[Item] = (), options: ComposeOptions | None = None
) -> list[PlacedStory] | None:
    """The stories stories_to_json wrote, on the edition's items (and "read also" history); None
    when the body is of another format or names an item that is not there (cluster again then).
    The sites `options.outlet_names` names now are cited by those names, in the quotes too."""
    names = dict(options.outlet_names) if options else {}
    plural = options.plural_outlets if options else frozenset()

    def quote(q: list[Any]) -> Quote:
        # A quote stores the name its outlet had when the edition was built: a site named since is renamed.
        source = names.get(q[0], q[0])
        gaps = tuple(q[5]) if len(q) > 5 else ()
        return Quote(
            source=source, url=q[1], item_id=q[2], sentences=tuple(q[3]), plural=q[4] or source in plural, gaps=gaps
        )

    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != STORIES_FORMAT:
        return None
    by_id = {i.id: i for i in history}
    by_id.update((i.id, i) for i in items)
    placed = []
    try:
        for row in data["stories"]:
            titles = row["titles"]

            def get(item_id: int, titles: dict[str, str] = titles) -> Item:
                item = as_written(by_id[item_id], names)
                title = titles.get(str(item_id), item.title)
                return item if title == item.title else dataclasses.replace(item, title=title)

            synopsis = tuple(quote(q) for q in row["synopsis"])
            placed.append(
                PlacedStory(
                    Story(
                        lead=get(row["lead"]),
                        also=tuple(get(i) for i in row["also"]),
                        read_also=tuple(get(i) for i in row["read_also"] if i in by_id),
                        synopsis=synopsis,
                    ),
                    row["section"],
                )
            )
    except (KeyError, IndexError, TypeError):
        return None
    return placed


def as_written(item: Item, names: Mapping[str, str] | None = None) -> Item:
    """An aggregator's item under the outlet that wrote it: the one its feed names (`Item.outlet`,
    from `<source>`: "Reuters"), else the site its link names (digest.outlets: "ria.ru"), by the
    name the operator gave that site in [outlets] (`names`: "ria.ru" -> "RIA Novosti") if any. A
    press review cites that outlet, not the feed that carried it, and counts it as an outlet of its
    own (stories' outlets, `max_per_source`, the synopsis). `via` keeps the feed's name, which the
    Press Review's outlets and the section rules name. Any other item is returned as it is."""
    site = item.outlet or linked_site(item.url)
    if site is None or item.via is not None:
        return item
    if names:
        site = names.get(site, site)  # a linked site is a host already, lower-case, without "www."
    return dataclasses.replace(item, source=site, via=item.source)


def without_boilerplate(items: Sequence[tuple[Item, str]]) -> list[tuple[Item, str]]:
    """The items with their feed's title boilerplate removed (digest.titles), learned per feed."""
    by_feed: dict[int, list[str]] = {}
    for item, _ in items:
        by_feed.setdefault(item.feed_id, []).append(item.title)
    cleaned = titles.clean_titles(by_feed)
    if not cleaned:
        return list(items)
    return [
        (dataclasses.replace(item, title=cleaned.get((item.feed_id, item.title), item.title)), section)
        for item, section in items
    ]


def outlets(story: Story) -> int:
    """How many different outlets carry the story (Story.outlets)."""
    return len({story.lead.source, *(item.source for item in story.also)})


def _shown(stories: list[Story], *, limit: int, per_source: int) -> list[Story]:
    """The stories a section shows: by outlets, then newest; at most `per_source` from one outlet."""
    stories.sort(key=lambda s: (-outlets(s), -s.lead.when.timestamp(), s.lead.id))
    shown: list[Story] = []
    from_source: dict[str, int] = {}
    for story in stories:
        if len(shown) >= limit:
            break
        if from_source.get(story.lead.source, 0) >= per_source:
            continue  # counted in "N more in <Section>", and on the web page
        from_source[story.lead.source] = from_source.get(story.lead.source, 0) + 1
        shown.append(story)
    return shown


def _local_day(item: Item, zone: ZoneInfo) -> date:
    # An item dated by its link alone is of that day wherever the reader is.
    return item.day_of_link or item.when.astimezone(zone).date()


def _top_rank(placed: PlacedStory) -> tuple[int, int, float, int]:
    # The stories most outlets tell, most first; one outlet's follow-ups count once. Among as many
    # outlets, the story with more reports first (ten reports by three outlets is a bigger story than
    # three by three: a replay of real feeds led with a hotel fire ahead of a mass shooting), then the newest.
    story = placed.story
    return (-story.outlets, -story.sources, -story.lead.when.timestamp(), story.lead.id)


def compose(
    stories: Sequence[PlacedStory],
    *,
    day: date,
    timezone: str,
    chosen: Collection[str] | None,
    options: ComposeOptions,
    web_url: str,
    taken: int | None = None,
    press: tuple[PressGroup, ...] | None = None,
) -> Edition:
    """One subscriber's edition: their sections only (None: all), in configured order.

    `taken`: no top stories block, but each section without the `taken` stories that rank first
    for it (digest.render.SectionCuts cuts a section set's sections from such editions: a top
    block drawn from any set of sections takes a section's first stories in this order). `press`:
    the Press Review outlets already chosen, as the whole edition has them (they do not depend on
    the section set), instead of choosing them again.
    """
    zone = ZoneInfo(timezone)
    wanted = [s for s in stories if chosen is None or s.section in chosen]
    top: tuple[Story, ...] = ()
    top_sections: tuple[str, ...] = ()
    multi = sorted((s for s in wanted if s.story.outlets > 1), key=_top_rank)
    if taken is not None:  # 0: nothing taken, and no block
        per_section: dict[str, int] = {}
        drop = set()
        for placed in multi:
            if per_section.get(placed.section, 0) < taken:
                per_section[placed.section] = per_section.get(placed.section, 0) + 1
                drop.add(placed.story.lead.id)
        wanted = [s for s in wanted if s.story.lead.id not in drop]
    elif options.top_stories:
        top = tuple(s.story for s in multi[: options.top_stories])
        top_sections = tuple(s.section for s in multi[: options.top_stories])
        top_ids = {s.lead.id for s in top}
        wanted = [s for s in wanted if s.story.lead.id not in top_ids]  # shown once, in the top block

    by_section: dict[str, list[Story]] = {}
    for placed in wanted:
        by_section.setdefault(placed.section, []).append(placed.story)
    order = list(options.section_order) + sorted(set(by_section) - set(options.section_order))

    groups = []
    limits = dict(options.section_limits)
    for name in order:
        section_stories = by_section.get(name)
        if not section_stories:
            continue
        limit = limits.get(name, options.max_per_section)
        shown = _shown(section_stories, limit=limit, per_source=options.max_per_source)
        days: dict[date, list[Story]] = {}
        for story in shown:
            days.setdefault(_local_day(story.lead, zone), []).append(story)
        groups.append(
            SectionGroup(
                name=name,
                anchor=section_anchor(name),
                days=tuple(DayGroup(day=d, stories=tuple(days[d])) for d in sorted(days, reverse=True)),
                total=len(section_stories),
                shown=len(shown),
            )
        )
    outlets_chosen: tuple[PressGroup, ...] = ()
    if options.press_outlets and (chosen is None or options.press_section in chosen):
        outlets_chosen = press_review(stories, options) if press is None else press
    return Edition(
        title=options.title,
        day=day,
        timezone=timezone,
        sections=tuple(groups),
        web_url=web_url,
        top_stories=top,
        language=options.language,
        press=outlets_chosen,
        press_section=options.press_section,
        subject_style=options.subject_style,
        top_sections=top_sections,
    )


class Narrowing:
    """Every section set's edition from editions composed once: what ``compose(chosen=...)`` gives.

    Without a top stories block, a set's edition is the whole edition's sections it chose (`narrow`).
    With one, the block is drawn from the set's own sections: its stories are the first
    ``top_stories`` of the set's in the block's order, and they are the first stories of their
    sections in that order too, so each chosen section is as the whole edition composed without its
    first k stories shows it (`taken(k)`, composed once per k), k being how many the block took from
    it. The press outlets do not depend on the set: they are the whole edition's.
    """

    def __init__(
        self, stories: Sequence[PlacedStory], *, day: date, timezone: str, options: ComposeOptions, web_url: str
    ) -> None:
        self._stories, self._options = stories, options
        self._day, self._timezone, self._web_url = day, timezone, web_url
        self.whole = compose(stories, day=day, timezone=timezone, chosen=None, options=options, web_url=web_url)
        self._ranked = sorted((s for s in stories if s.story.outlets > 1), key=_top_rank)
        self._taken: dict[int, Edition] = {}

    def taken(self, k: int) -> Edition:
        """The whole edition without a top block and without each section's first `k` stories."""
        found = self._taken.get(k)
        if found is None:
            found = self._taken[k] = compose(
                self._stories,
                day=self._day,
                timezone=self._timezone,
                chosen=None,
                options=self._options,
                web_url=self._web_url,
                taken=k,
                press=self.whole.press,
            )
        return found

    def narrow(self, chosen: Collection[str] | None) -> Edition:
        if chosen is None or not self.whole.top_stories:
            return narrow(self.whole, chosen)
        top: list[PlacedStory] = []
        for placed in self._ranked:
            if placed.section in chosen:
                top.append(placed)
                if len(top) == self._options.top_stories:
                    break
        counts: dict[str, int] = {}
        for placed in top:
            counts[placed.section] = counts.get(placed.section, 0) + 1
        sections = []
        for group in self.taken(0).sections:  # every section with stories, in the edition's order
            if group.name in chosen:
                k = counts.get(group.name, 0)
                left = group if not k else next((g for g in self.taken(k).sections if g.name == group.name), None)
                if left is not None:  # None: the block took all its stories
                    sections.append(left)
        return dataclasses.replace(
            self.whole,
            sections=tuple(sections),
            top_stories=tuple(p.story for p in top),
            top_sections=tuple(p.section for p in top),
            press=self.whole.press if self.whole.press_section in chosen else (),
        )


def narrow(whole: Edition, chosen: Collection[str] | None) -> Edition:
    """A section set's edition cut from the whole one (``compose`` with chosen=None), without composing
    again: the same as ``compose(chosen=...)`` when there is no top stories block, which picks across
    the chosen sections (each section's stories, caps and days do not depend on the others)."""
    if chosen is None:
        return whole
    return dataclasses.replace(
        whole,
        sections=tuple(g for g in whole.sections if g.name in chosen),
        press=whole.press if whole.press_section in chosen else (),
    )


def press_review(stories: Sequence[PlacedStory], options: ComposeOptions) -> tuple[PressGroup, ...]:
    """The Press Review section: per press outlet, its leading stories, each quoting that outlet first.

    An outlet's leading stories are the ones it shares with the most other outlets; among equals (and
    when it shares none) its newest items first, as its own feed lists them. Every story of the
    edition counts, whatever section it is in: the press review is a view across sections.
    """
    groups = []
    for outlet in options.press_outlets:
        mine: list[tuple[int, float, int, Item, Story]] = []
        for placed in stories:
            members = (placed.story.lead, *placed.story.also)
            own = [i for i in members if (i.via or i.source) == outlet]
            if not own:
                continue
            others = len({i.source for i in members} - {own[0].source})
            mine.append((-others, -own[0].when.timestamp(), own[0].id, own[0], placed.story))
        mine.sort(key=lambda row: row[:3])
        picked = []
        for _, _, _, item, story in mine[: options.press_stories]:
            rest = tuple(i for i in (story.lead, *story.also) if i.id != item.id)
            told = synopsis.synopsis(
                (item, *rest),
                limit=options.press_sentences,
                min_outlets=1,
                first_outlet=item.source,
                plural=options.plural_outlets,
            )
            picked.append(Story(lead=item, also=rest, read_also=story.read_also, synopsis=told))
        if picked:
            groups.append(PressGroup(outlet=outlet, stories=tuple(picked)))
    return tuple(groups)
