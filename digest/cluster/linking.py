"""The story-level passes after the first: a story two outlets tell takes in a late report on it
(`_link`), and a report in another language that two of its outlets' members match (`_link_across`). Pure.

A story that two outlets or more tell takes in another story that shares a pair of its own rare
words and nothing else does: a story's centroid is diluted by its members' varied words, so a late
report on it scores under the threshold though it carries two of the story's words.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import chain

from digest import words
from digest.cluster.features import TITLE_WEIGHT, _add_text, _Profile, _ties_languages, _token_features
from digest.cluster.stories import (
    _MAX_GAP_SECONDS,
    CROSS_LANGUAGE_THRESHOLD,
    DEFAULT_THRESHOLD,
    _mostly_one_language,
    _number_mismatch,
    _Story,
)
from digest.cluster.vectors import _Batch, _cosine

LINK_COSINE = 0.5  # the second pass (`_link`): centroids' cosine, times the threshold
LINK_SPECIFIC_SHARE = 0.5  # ... one word of the linking pair in at most this share of the rare bar's items
LINK_SPECIFIC_DF = 10  # ... and in at most this many: in 50,000 items, chance pairs of rarer words abound
LINK_CORE_WORDS = 3  # ... or a third of the other story, one report of it with this many of the story's core words


def _link(
    stories: dict[int, _Story],
    profiles: Sequence[_Profile],
    titles: Sequence[str],
    rare_words: Sequence[frozenset[str]],
    batch: _Batch,
    find: Callable[[int], int],
    merge: Callable[[int, int], None],
    threshold: float,
) -> None:
    """The second pass, story by story: a story that two outlets or more tell takes in another story
    when the two share a *pair* of its rare words that no other item of the batch has, or takes in
    each of several stories when every report of theirs with the pair has it in its headline.

    A story's centroid is diluted by its members' varied words, so a late report ("Trump calls Russian
    hacking controversy a witch hunt") scores under the threshold against it though it carries two of
    the story's own words ("hack", "Russia"). One shared word is a subject; a pair of rare words that
    two of the story's members have, one of them an event word and one specific (`LINK_SPECIFIC_DF`),
    found elsewhere only in one other story, is this story. Found in several other stories, each a
    report headlined with the pair ("Report on US election hacking says Russia plans to do more",
    "News Analysis: Russian Intervention in American Election ..."), it is this story too; one of
    them that has it only in its summary is not taken in. Guards, each measured on the labelled
    days, the whole corpus and the bench's invented stories: the pair is in the titles of two of the
    story's members or in the title of every outside item that has it (of every one, when several
    stories have it); the outside items are half the other story at least (not a passing mention in
    it), or a third of it when one of them has `LINK_CORE_WORDS` of the words two of the story's
    members share (it tells this story: the police's account of the Chicago beating on video and
    the charges' story, one of whose three reports has "beating", "video" and "Chicago"); one
    language in common; `MAX_GAP`; the centroids' cosine at least `LINK_COSINE` times the
    threshold. Stories of one outlet never take in anything here: its series (crime reports, match
    previews, listings) share pairs of words too.
    """
    df = batch.df
    limit = min(LINK_SPECIFIC_SHARE * batch.rare_limit, LINK_SPECIFIC_DF)
    # Rare words in three items at least (two of the story's and one outside it), and of those the
    # specific ones. Words only: a name's key and its word are one token, and would make a pair of one.
    linkable = frozenset([f for f in batch.rare if df[f] >= 3 and f[0] != "n"])
    specific = frozenset([f for f in linkable if df[f] <= limit])
    # Each item's specific words, read off its rare words (`specific` is among `linkable`). Set operations in C.
    own = [specific.intersection(v) for v in rare_words]
    # Each item's linkable words: its rare words (of `batch.words`) that are linkable, found only for
    # the members of the few stories that can link and the items outside them that have the pair.
    feats: list[frozenset[str] | None] = [None] * len(rare_words)

    def linkable_of(rank: int) -> frozenset[str]:
        found = feats[rank]
        if found is None:
            found = feats[rank] = linkable.intersection(rare_words[rank])
        return found

    holders: dict[str, list[int]] = defaultdict(list)  # a specific word -> the items with it
    for rank, fs in enumerate(own):
        for f in fs:
            holders[f].append(rank)
    headlines: dict[int, dict[str, float]] = {}
    sequences: dict[int, list[str]] = {}

    def headline(rank: int) -> dict[str, float]:
        # A title's features, worked out for the few items a pair is checked on.
        found = headlines.get(rank)
        if found is None:
            found = headlines[rank] = {}
            _add_text(found, set(), {}, titles[rank], profiles[rank].lang, TITLE_WEIGHT)
        return found

    def phrase(f: str, g: str, ranks: Sequence[int]) -> bool:
        # Two words side by side in every title that has both are one term ("central bank", "foreign
        # ministers"): a subject, not a pair.
        side_by_side = False
        for r in ranks:
            seq = sequences.get(r)
            if seq is None:
                lang = profiles[r].lang
                text = unicodedata.normalize("NFKC", titles[r])
                tokens = words.tokens_of_normalised(text)
                # A function word between two words keeps them apart ("hacking says Russia"): a blank.
                seq = sequences[r] = [
                    next((x for x, _, _ in _token_features(t, lang) if x[0] == "w"), "") for t in tokens
                ]
            pairs = set(zip(seq, seq[1:], strict=False))
            if f in seq and g in seq:
                if (f, g) not in pairs and (g, f) not in pairs:
                    return False
                side_by_side = True
        return side_by_side

    links: set[tuple[int, int]] = set()
    for a in sorted(stories):
        sa = stories[a]
        if len(sa.ranks) < 2 or len(sa.sources) < 2:
            continue
        # The story's specific words that items outside it have too: most stories have none (cheap).
        starts = [
            f
            for f, k in Counter(chain.from_iterable(own[r] for r in sa.ranks)).items()
            if k >= 2 and len(holders[f]) > k
        ]
        if not starts:
            continue
        members = set(sa.ranks)
        # A pair needs a second word that two of the members with the first share with an item
        # outside that has the first: most stories with a start have none (found without the
        # story's core and events, which only the few that have one go on to work out).
        if not any(_paired(f, sa.ranks, members, own, holders[f], rare_words, linkable) for f in starts):
            continue
        counts = Counter(chain.from_iterable(linkable_of(r) for r in sa.ranks))
        core = sorted(f for f, k in counts.items() if k >= 2)
        # Its event words: a title-case headline writes every word with a capital, so a word there is an
        # event only if no member writes it with one ("Russian" in "What Intelligence Agencies Concluded
        # About the Russian Attack" is the "Russian President" of another member's summary).
        events = set(chain.from_iterable(profiles[r].events for r in sa.ranks if not profiles[r].styled))
        titled = set(chain.from_iterable(profiles[r].events for r in sa.ranks if profiles[r].styled))
        if titled:
            events |= titled.difference(*(profiles[r].capitals for r in sa.ranks))
        for f in sorted(starts):
            away = [r for r in holders[f] if r not in members]
            for g in core:
                if g == f or (g in specific and g < f) or (f not in events and g not in events):
                    continue  # each pair once: two specific words in their order
                outside = [r for r in away if g in linkable_of(r)]
                if not outside or sum(1 for r in sa.ranks if f in linkable_of(r) and g in linkable_of(r)) < 2:
                    continue  # the pair must be outside the story, and in two of its members
                roots = {find(r) for r in outside}
                for b in sorted(roots):
                    mine = [r for r in outside if find(r) == b] if len(roots) > 1 else outside
                    sb = stories[b]
                    if sa.langs.isdisjoint(sb.langs):
                        continue
                    # Half the other story has the pair, or a third of it, one of those reports telling
                    # this story's core (`LINK_CORE_WORDS` of the words two of its members share).
                    if len(mine) < len(sb.ranks) / 2 and (
                        len(mine) < len(sb.ranks) / 3
                        or all(len(linkable_of(r).intersection(core)) < LINK_CORE_WORDS for r in mine)
                    ):
                        continue
                    if max(sa.last, sb.last) - min(sa.first, sb.first) > _MAX_GAP_SECONDS:
                        continue
                    # The pair in every outside report's headline, or in two of the story's; when several
                    # stories have it, in every outside headline: each is then a report *on* it.
                    every = all(f in headline(r) and g in headline(r) for r in mine)
                    if not every and (
                        len(roots) > 1 or sum(1 for r in sa.ranks if f in headline(r) and g in headline(r)) < 2
                    ):
                        continue
                    if phrase(f, g, [*sa.ranks, *mine]):
                        continue
                    if _cosine(sa.word_unit(), sb.word_unit()) >= LINK_COSINE * threshold:
                        links.add((a, b))
    for a, b in sorted(links):
        ra, rb = find(a), find(b)
        if ra != rb:
            merge(min(ra, rb), max(ra, rb))


def _paired(
    f: str,
    ranks: Sequence[int],
    members: set[int],
    own: Sequence[frozenset[str]],
    holding: Sequence[int],
    rare_words: Sequence[frozenset[str]],
    linkable: frozenset[str],
) -> bool:
    """Whether a linkable word besides `f` is in two of the story's members that have `f` (`own`:
    each item's specific words) and in an item outside it that has `f` (`holding`: the items with it)."""
    with_f = [rare_words[r] for r in ranks if f in own[r]]
    twice: set[str] = set()  # the words two of them have: a few sets' intersections, in C
    for k, mine in enumerate(with_f):
        for theirs in with_f[k + 1 :]:
            twice |= mine & theirs
    twice.discard(f)
    twice.intersection_update(linkable)
    return bool(twice) and any(not twice.isdisjoint(rare_words[r]) for r in holding if r not in members)


def _link_across(
    profiles: Sequence[_Profile],
    outlets: Sequence[str],
    neighbours: dict[int, list[int]],
    batch: _Batch,
    stories: dict[int, _Story],
    find: Callable[[int], int],
    merge: Callable[[int, int], None],
    threshold: float,
) -> None:
    """The third pass: a story takes in an item written in a language the story does not use when
    two of its members from two outlets, each compared alone with the item, reach the cross-language
    bar (names and figures, a rare name shared, halved when their figures all differ).

    A story's name centroid gathers every name its members cite (Clinton, Clapper, Pence), so one
    report in another language scores under the bar against it ("Fünf Tote im Flughafen: Täter von
    Fort Lauderdale ..." against the English and French coverage of the shooting) while it reaches
    the bar with several members one by one. Two outlets' members, not one: one outlet's series
    cites the same names (a paper's "PM" in every report), and one chance match is a subject.
    """
    langs = Counter(p.lang for p in profiles)
    if len(langs) < 2:
        return  # one language: nothing to do
    # Every pair in two languages has an item outside the commonest one: walking those items' candidates
    # finds each pair (from both ends when neither is in it) without walking the whole batch's.
    main = langs.most_common(1)[0][0]
    bar = threshold * CROSS_LANGUAGE_THRESHOLD / DEFAULT_THRESHOLD
    names, rare, common = batch.names, batch.rare, batch.no_anchors
    support: dict[tuple[int, int], set[str]] = defaultdict(set)  # (story, item) -> outlets that match
    for m, p in enumerate(profiles):
        if p.lang == main:
            continue
        sm = find(m)
        m_told = len(stories[sm].sources) > 1  # only a story two outlets tell can take anything in
        for x in neighbours.get(m, ()):
            if profiles[x].lang == p.lang:
                continue
            sx = find(x)
            if sx == sm or not (m_told or len(stories[sx].sources) > 1):
                continue
            shared = names[m].keys() & names[x].keys()
            anchored = any(f[0] == "n" and _ties_languages(f) and f in rare and f not in common for f in shared)
            # Figures that all differ say another event, as in the first pass (`stories._number_mismatch`).
            if anchored and _cosine(names[m], names[x]) * _number_mismatch(names[m], names[x]) >= bar:
                support[(sx, m)].add(outlets[x])  # x's story, matched by x, may take in m
                support[(sm, x)].add(outlets[m])  # and the other way round
    claims: dict[int, set[int]] = defaultdict(set)  # a story -> the stories that would take it in
    for (a, j), seen_by in sorted(support.items()):
        if len(seen_by) < 2:
            continue
        b = find(j)
        sa, sb = stories[a], stories[b]
        if not sa.langs.isdisjoint(sb.langs) and _mostly_one_language(sa.ranks, sb.ranks, batch.langs):
            continue  # mostly one language: the first pass's tests decide
        if max(sa.last, sb.last) - min(sa.first, sb.first) > _MAX_GAP_SECONDS:
            continue
        claims[b].add(a)
    # A report that two stories each claim would chain them into one through it: which of them it
    # tells is not known here, so it joins neither.
    links = {(min(a, b), max(a, b)) for b, by in claims.items() if len(by) == 1 for a in by}
    for a, b in sorted(links):
        ra, rb = find(a), find(b)
        if ra != rb:
            merge(min(ra, rb), max(ra, rb))
