"""Weather that hits one place: one story, however differently its reports word it. Pure.

A cold snap's reports share a city and the cold, and little else: Moscow's coldest Christmas night
in 126 years was told on 6-7 January 2017 as buses to warm churchgoers, 62 people hurt, a bicycle
parade going ahead, a winter rainbow and an "orange" warning, whose words barely meet (cosines
0.00-0.19), so no word-based test joins them. An editor tells them as one story: the weather in
that place that day. So the last story-level pass (`_link_weather`) joins stories whose every report
headlines one kind of weather (`KINDS`, words of each language) and that name one place in common,
within `MAX_GAP`.

Precision first: only words that mean the weather in a headline are listed ("frost", "мороз",
"gelo"), not those that often mean something else ("cold" war, a hiring "freeze", a French "gel" of
assets, a "caldo" dish); a headline that speaks of war is no weather report ("холодной войны").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import cache

from digest import words
from digest.cluster.features import TITLE_WEIGHT, _Profile
from digest.cluster.stories import _MAX_GAP_SECONDS, _Story
from digest.cluster.vectors import _Batch

COLD = "cold"
HEAT = "heat"

# Each kind's words, written once in the forms a headline uses; matched by their word forms
# (`words.word_form`, so "морозов" meets "мороз"). Snow and ice are the cold's: a city's snowfall
# and its frost the same day are one weather story.
KINDS: Mapping[str, Mapping[str, str]] = {
    "en": {
        COLD: "frost frosts frostbite blizzard blizzards snowstorm snowstorms snowfall snowfalls snow icy hypothermia",
        HEAT: "heatwave heatwaves heatstroke",
    },
    "fr": {
        COLD: "froid froids glacial glaciale glaciales verglas neige neiges enneigé enneigées",
        HEAT: "canicule canicules",
    },
    "de": {
        COLD: "kälte kältewelle frost minusgrade glatteis glätte schnee schneefall schneesturm eisig eisige",
        HEAT: "hitze hitzewelle",
    },
    "es": {
        COLD: "frío fríos helada heladas nieve nevada nevadas",
        HEAT: "calor canícula",
    },
    "it": {
        COLD: "freddo fredda freddi gelo gelate gelata ghiaccio ghiacciano ghiacciato neve nevicata nevicate sottozero",
        HEAT: "afa canicola",
    },
    "pt": {
        COLD: "frio frios geada geadas neve nevasca",
        HEAT: "calor canícula",
    },
    "ru": {
        COLD: "мороз морозы морозов морозный холод холода холодов холодный холодная холодной снегопад "
        "снегопады метель гололед гололёд стужа",
        HEAT: "жара жары зной",
    },
}

# A headline with one of these tells of something else ("the cold war", "холодной войны").
_NOT_WEATHER: Mapping[str, str] = {
    "en": "war wars",
    "fr": "guerre",
    "de": "krieg",
    "es": "guerra",
    "it": "guerra",
    "pt": "guerra",
    "ru": "война войны войне войну",
}


@cache
def _lexicon(lang: str) -> tuple[dict[str, str], frozenset[str]]:
    """A language's weather words as word features -> kind, and its words that say it is not weather."""
    kinds: dict[str, str] = {}
    for kind, text in KINDS.get(lang, {}).items():
        for word in text.split():
            form = words.word_form(word, lang)
            if form is not None:
                kinds["w:" + form] = kind
    not_weather = {words.word_form(word, lang) for word in _NOT_WEATHER.get(lang, "").split()}
    return kinds, frozenset("w:" + f for f in not_weather if f is not None)


def headline_weather(profile: _Profile) -> frozenset[str]:
    """The kinds of weather an item's headline tells of (its title's words weigh `TITLE_WEIGHT`)."""
    kinds, not_weather = _lexicon(profile.lang)
    if not kinds:
        return frozenset()
    features = profile.features
    found = kinds.keys() & features.keys()  # in C: most items have none
    if found:
        found = {f for f in found if features[f] >= TITLE_WEIGHT}
    if not found or any(features.get(f, 0.0) >= TITLE_WEIGHT for f in not_weather):
        return frozenset()
    if profile.names:  # a word written as a name where it stands is someone: Дед Мороз, Jon Snow, Robert Frost
        names = {w for _, w in profile.names}
        found -= names
    return frozenset(kinds[f] for f in found)


def places(profile: _Profile, named: frozenset[str] | set[str], common: frozenset[str]) -> set[str]:
    """What an item names: its names' keys, and its capitalised words that some report writes as a
    name where it stands (`named`: "Roma" opening a headline, "a Roma" in a summary), less the
    batch's common nouns' keys."""
    found = {f for f in profile.others if f[0] == "n" and f not in common}
    found.update(profile.capitals.intersection(named))
    return found


def _link_weather(
    profiles: Sequence[_Profile],
    stories: dict[int, _Story],
    batch: _Batch,
    find: Callable[[int], int],
    merge: Callable[[int, int], None],
) -> None:
    """Join the stories of one kind of weather in one place: every report of each headlines the
    kind, the two name a place in common (a name's key across languages, a capitalised word within
    one), and together they span no more than `MAX_GAP`."""
    weather: dict[int, frozenset[str]] = {}
    for rank, profile in enumerate(profiles):
        kinds = headline_weather(profile)
        if kinds:
            weather[rank] = kinds
    if len(weather) < 2:
        return
    told: dict[int, list[int]] = defaultdict(list)  # a story -> its members with a weather headline
    for rank in weather:
        told[find(rank)].append(rank)
    # A story of weather: every member headlines it. One whose other reports tell something else
    # (a Christmas service that mentions the frost) is not joined to the weather through one of them.
    sids = sorted(sid for sid, ranks in told.items() if len(ranks) == len(stories[sid].ranks))
    kind_of = {sid: frozenset.intersection(*(weather[r] for r in told[sid])) for sid in sids}
    # Words written as names where they stand, in the weather reports (not the kinds' own words: a
    # headline may open with "Морозы").
    named = {w for sid in sids for r in told[sid] for _, w in profiles[r].names}
    named.difference_update(*(_lexicon(profiles[r].lang)[0] for sid in sids for r in told[sid]))
    place_of = {sid: set().union(*(places(profiles[r], named, batch.common) for r in told[sid])) for sid in sids}
    holders: dict[str, list[int]] = defaultdict(list)  # a place -> the weather stories that name it
    for sid in sids:
        for place in place_of[sid]:
            holders[place].append(sid)
    pairs = sorted({(a, b) for sids_of in holders.values() for i, a in enumerate(sids_of) for b in sids_of[i + 1 :]})
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra == rb or not kind_of[a] & kind_of[b]:
            continue
        sa, sb = stories[ra], stories[rb]
        if max(sa.last, sb.last) - min(sa.first, sb.first) > _MAX_GAP_SECONDS:
            continue
        # Across languages only a name's key ties two reports: a word is one language's.
        if sa.langs.isdisjoint(sb.langs) and not any(p[0] == "n" for p in place_of[a] & place_of[b]):
            continue
        merge(min(ra, rb), max(ra, rb))
