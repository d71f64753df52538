"""Which section an item belongs to, and why.

This module owns the section rules: it maps one item (title, summary, URL, categories, its feed) to
one configured section and says in a sentence which rule decided, so `digest` can explain a
placement. It is pure: no clock, no store, no I/O; the edition calls it once per item and stores
the answer.

A section's rules:

* each of its own `categories`, `url_patterns`, `keywords` and `feeds` lists is a rule with one
  condition (any entry of the list satisfies it);
* each `[[sections.rules]]` table is a rule whose conditions must all hold;
* `not_keywords` (on the section, or on one rule) rule the section (or that rule) out when one of
  them occurs in the title or summary;
* in a rule, `keywords` may be a list of lists: a word of each list must occur ("Russia" and one
  of "Trump", "Brexit"); it is one keyword condition, whose weight adds up the words found;
* a rule's `languages` hold when the item is written in one of them (as `digest.words` tells it
  from the title and summary, or its feed's declared language where they say little of their own:
  `words.language_read`; the language its keywords are read in). They narrow the rule
  ("opera" in English, not the Portuguese "operação") without making it more specific: they count
  in neither a. nor b. below, and a rule of `languages` alone ranks below every other rule, a
  fallback for the items of those languages that nothing else places.

Conditions: `categories` equal one of the item's categories (case-insensitively); `url_patterns`
are regular expressions searched in the link's path; `keywords` occur in the title or the summary
as word forms (digest.words: "Путин" matches "Путина", "sanction" matches "sanctions"; a keyword of
several words matches them in a row); `feeds` equal the feed's name (as configured, or as the
edition cites it), its own title or its URL.

Order of decision:

1. feed      the feed's configured `section` beats every rule: the operator said so;
2. rules     of all matching rules the most specific wins, compared on, in turn:
             a. how many conditions the rule has (a rule "category World and keyword army" beats
                "category World");
             b. its strongest condition: feeds, then categories or url_patterns (the publisher's
                own filing, equal evidence), then keywords (our guess);
             c. how many of the section's rules match (a category and a URL path that agree beat
                a category alone);
             d. its keyword weight: each keyword found counts 2 per word in the title, 1 per word
                in the summary only (a phrase is more specific than a word), once per word form;
             e. section order, so the operator breaks what remains by ordering [[sections]];
3. fallback  nothing matched.
"""

from __future__ import annotations

import os.path
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from digest import words
from digest.config import Rule, Section
from digest.outlets import split_url

# Kinds of condition, strongest first; the strength of a rule is that of its strongest condition.
_STRENGTH = {"feeds": 3, "categories": 2, "url_patterns": 2, "keywords": 1}
# Names of the old single-kind rules, kept in Classification.rule for callers and logs.
_KIND_NAME = {
    "feeds": "source",
    "categories": "category",
    "url_patterns": "url",
    "keywords": "keyword",
    "languages": "language",
}


@dataclass(frozen=True, slots=True)
class Classification:
    section: str
    rule: str  # "feed" | "category" | "url" | "keyword" | "source" | "language" | "rule" | "fallback"
    reason: str  # one human sentence, e.g. "category 'Politics' matches section 'World'"


def _fold(text: str) -> str:
    # NFKC then casefold: full-width and compatibility forms match, and "ß"/"SS", "Ё"/"ё" fold alike.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=1024)
def _url_pattern(pattern: str) -> re.Pattern[str]:
    # config validated that the pattern compiles.
    return re.compile(pattern, re.IGNORECASE)


_BACKREFERENCE = re.compile(r"\\\d|\(\?P=")


@lru_cache(maxsize=1024)
def _any_url_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex that finds wherever any of `patterns` would: a rule's patterns searched at once,
    so that a path none of them matches (most paths, for most rules) costs one search instead of
    one per pattern (the shipped rules have ~500 in all). Which pattern matched first in the list
    is then asked of them in order, as before. None when the patterns cannot be joined unchanged
    (a numbered backreference would point at another group; a flag set mid-pattern is an error)."""
    if any(_BACKREFERENCE.search(p) for p in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    except re.error:
        return None


def _url_match(patterns: tuple[str, ...], path: str) -> str | None:
    """The first of `patterns` (in their order) found in `path`."""
    joined = _any_url_pattern(patterns)
    if joined is not None and not joined.search(path):
        return None
    return next((p for p in patterns if _url_pattern(p).search(path)), None)


def _url_path(url: str) -> str:
    parts = split_url(url)
    return "" if parts is None else parts.path or "/"  # an address urlsplit refuses has no path to match


# --------------------------------------------------------------------------- word forms


_CYRILLIC = re.compile("[\u0400-\u04ff]")


@lru_cache(maxsize=65536)  # every word of every item's text passes here: most are met again and again
def _plain(stem: str) -> str:
    """A stem compared without accents ("élection" ~ "election"), but never across scripts: no
    transliteration, so a Russian keyword cannot meet an English word that sounds alike."""
    if _CYRILLIC.search(stem):
        return stem.replace("ё", "е")
    return "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))


_Form = tuple[str, str, bool, str, bool, str]


def _forms(text: str, lang: str, *, keep_stopwords: bool = False) -> list[_Form]:
    """Each word of `text` as (its stem, its stem stemmed once more, whether it is an acronym, the
    word itself casefolded, whether it is written with a capital, its inflection key: `_inflected`'s
    for English, "" for the languages that have none).

    Snowball stems a name's oblique case to its nominative ("Лаврова" -> "лавров") but the
    nominative further ("Лавров" -> "лавр"): comparing on the second form as well lets a keyword
    in any case meet the text in any case. Scripts without spaces give digest.words' bigrams.
    """
    out: list[_Form] = []
    for token in words.tokens(text):
        if words.has_cjk(token):
            out.extend((f, f, False, f, False, "") for f in words.word_forms(token, lang))
            continue
        word = token.casefold()
        if not keep_stopwords and (len(word) < 2 or words.is_stopword(word, lang)):
            continue
        once = words.stem(word, lang)
        acronym = token.isupper() and len(token) > 1
        key = _inflected(word) if lang == "en" else ""
        out.append((_plain(once), _plain(words.stem(once, lang)), acronym, word, token[0].isupper(), key))
    return out


_DOUBLED = re.compile(r"([b-df-hj-np-tv-z])\1$")
_VOWEL = re.compile("[aeiouy]")


@lru_cache(maxsize=65536)
def _inflected(word: str) -> str:
    """An English word without its inflection (a plural, a possessive, a past, a gerund), as a key
    two forms of one word share: "companies" and "company", "shares", "shared" and "sharing",
    "stopped" and "stop". Snowball stems derived words alike as well ("important" and "imports" are
    "import", "physical" and "physics" "physic", "inflatable" and "inflation" "inflat"): these keys
    tell them apart. A key is for comparing, not a word: a final "e" and a doubled consonant go, and
    a final "y" is an "i" ("movie" and "movies", "study" and "studied")."""
    w = _plain(word).removesuffix("'s").removesuffix("\u2019s")  # accents aside: "défense" is "defense"
    if len(w) > 4 and w.endswith(("ies", "ied")):
        w = w[:-3] + "i"
    elif len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif len(w) > 4 and w.endswith("is"):  # "crisis" and "crises", "analysis" and "analyses"
        w = w[:-2] + "e"
    for ending in ("ing", "ed"):  # after a plural's: "shootings", "shooting" and "shoot"
        # "thing", "string", "seed", "speed": no inflection there (a base needs a vowel and three letters).
        base = w.removesuffix(ending)
        if base != w and len(base) >= 3 and _VOWEL.search(base) and not (ending == "ed" and base.endswith("e")):
            w = base
            break
    w = w.removesuffix("e")
    return _DOUBLED.sub(r"\1", w[:-1] + "i" if w.endswith("y") else w)


def item_language(title: str, summary: str, declared: str | None = None) -> str:
    """The language an item's keywords are read in and its rules' `languages` compare with: its
    text's, or its feed's `declared` one where the text says little (`words.language_read`)."""
    return words.language_of(f"{title} {summary}", declared)


class _Text:
    """An item's title and summary as word forms, in the language they are written in, indexed.

    An item is tested against every keyword of every rule (the shipped rules have hundreds, and a
    keyword recurs across rules), so each text keeps where each of its forms stands: a keyword is
    looked for only where its first word could match, and each keyword's answer is kept.
    """

    def __init__(self, title: str, summary: str, declared: str | None = None) -> None:
        self.lang = item_language(title, summary, declared)
        self.title = _Sequence(_forms(title, self.lang, keep_stopwords=True))
        self.summary = _Sequence(_forms(summary, self.lang, keep_stopwords=True))
        self._where: dict[str, str | None] = {}
        # The keywords of the rules that could occur here (`_KeywordIndex`); None: any keyword may.
        self.possible: frozenset[str] | None = None

    def where(self, keyword: str) -> str | None:
        """'title', 'summary' or None: where the keyword's word forms occur in a row."""
        if self.possible is not None and keyword not in self.possible:
            return None
        if keyword in self._where:
            return self._where[keyword]
        wanted = _keyword_forms(keyword, self.keyword_lang(keyword))
        found = None
        if wanted:
            found = "title" if self.title.contains(wanted) else "summary" if self.summary.contains(wanted) else None
        self._where[keyword] = found
        return found

    def keyword_lang(self, keyword: str) -> str:
        # A keyword in another script than Latin says its own language ("Путин" is Russian even
        # in a rule applied to English text); a Latin one is read in the item's language.
        return _own_language(keyword) or self.lang


@lru_cache(maxsize=8192)
def _own_language(keyword: str) -> str | None:
    return words.language_of(keyword) if any(ord(c) > 0x24F for c in keyword) else None


class _Sequence:
    """One text's word forms, with the positions of each stem and of each twice-stemmed form."""

    __slots__ = ("forms", "_at_stem", "_at_twice")

    def __init__(self, forms: list[_Form]) -> None:
        self.forms = forms
        self._at_stem: dict[str, list[int]] = {}
        self._at_twice: dict[str, list[int]] = {}
        for i, form in enumerate(forms):
            self._at_stem.setdefault(form[0], []).append(i)
            self._at_twice.setdefault(form[1], []).append(i)

    def contains(self, wanted: tuple[_Form, ...]) -> bool:
        """Whether `wanted` occurs in a row (`_same` word by word). `_same` holds only where the stems
        are equal or the twice-stemmed forms (of four letters or more) are: only there is looked at."""
        first = wanted[0]
        starts = self._at_stem.get(first[0])
        twice = self._at_twice.get(first[1]) if len(first[1]) >= 4 else None
        if twice:
            starts = sorted({*starts, *twice}) if starts else twice
        if not starts:  # most keywords: no word of the text could begin them
            return False
        forms, n = self.forms, len(wanted)
        return any(i + n <= len(forms) and all(_same(forms[i + j], wanted[j]) for j in range(n)) for i in starts)


@lru_cache(maxsize=8192)
def _keyword_forms(keyword: str, lang: str) -> tuple[_Form, ...]:
    # Stopwords stay: the text keeps them too, and a keyword such as "US" or "Bank of Russia" means them.
    return tuple(_forms(keyword, lang, keep_stopwords=True))


class _KeywordIndex:
    """The rules' keywords by their first word's forms, for texts of one language.

    A keyword can occur in a text only where its first word's stem, or its twice-stemmed form of
    four letters or more, is one of the text's (all `_Sequence.contains` looks at). So an item's
    possible keywords are found once, from its text's forms, and every other keyword of every rule
    is passed over unread: the shipped rules have ~1,450 keywords, of which an item's words can begin
    a few dozen. Each rule's keyword lists are kept as sets too, so that a rule none of whose
    keywords is possible is ruled out by one set test.
    """

    __slots__ = ("_by_stem", "_by_twice", "_groups")

    def __init__(self, sections: Sequence[Section], lang: str) -> None:
        self._by_stem: dict[str, set[str]] = {}
        self._by_twice: dict[str, set[str]] = {}
        self._groups: dict[int, frozenset[str]] = {}  # id of a rule's keyword list -> its keywords
        for section in sections:
            for rule in _section_rules(section):
                for group in (rule.keywords, *rule.keyword_groups, rule.not_keywords):
                    self._groups[id(group)] = frozenset(group)
                    for keyword in group:
                        self._add(keyword, lang)
            for keyword in section.not_keywords:
                self._add(keyword, lang)

    def _add(self, keyword: str, lang: str) -> None:
        forms = _keyword_forms(keyword, _own_language(keyword) or lang)
        if forms:
            self._by_stem.setdefault(forms[0][0], set()).add(keyword)
            if len(forms[0][1]) >= 4:
                self._by_twice.setdefault(forms[0][1], set()).add(keyword)

    def possible(self, text: _Text) -> frozenset[str]:
        """The keywords whose first word could begin a match in the text's title or summary."""
        found: set[str] = set()
        for seq in (text.title, text.summary):
            for stem in self._by_stem.keys() & seq._at_stem.keys():
                found |= self._by_stem[stem]
            for twice in self._by_twice.keys() & seq._at_twice.keys():
                found |= self._by_twice[twice]
        return frozenset(found)

    def group(self, keywords: tuple[str, ...]) -> frozenset[str]:
        """A rule's keyword list as a set (the lists of the sections the index was made from)."""
        found = self._groups.get(id(keywords))
        return found if found is not None else frozenset(keywords)


# (sections, their index per language of text), by the sections' identity: a daemon's settings
# keep one sequence of sections for as long as they are loaded.
_INDEXES: dict[int, tuple[Sequence[Section], dict[str, _KeywordIndex]]] = {}


def _index(sections: Sequence[Section], lang: str) -> _KeywordIndex:
    held = _INDEXES.get(id(sections))
    if held is None or held[0] is not sections:
        if len(_INDEXES) >= 8:  # settings reloaded now and then: keep a few
            _INDEXES.clear()
        held = _INDEXES[id(sections)] = (sections, {})
    index = held[1].get(lang)
    if index is None:
        index = held[1][lang] = _KeywordIndex(sections, lang)
    return index


_ENDING = 3  # letters an inflection adds to a word: "санкция" -> "санкциями", "army" -> "armies"


def _same(text: _Form, keyword: _Form) -> bool:
    # A keyword written in capitals is an acronym: "UN" is not the Spanish "un", nor "CES" the French "ces".
    if keyword[2] and not text[2]:
        return False
    # A keyword written with a capital is a name: "Crimea" is not the Portuguese "crime" that a
    # shared stem would make it. A headline in title case writes every word with one, so it still
    # meets; a sentence's first word does too, which a shared stem alone rarely makes wrong.
    if keyword[4] and not text[4]:
        return False
    # A word form is the keyword with another ending (a case, a number), not a word derived from it,
    # which Snowball stems alike: "opinionated" is not "opinion", nor "comments" "commentators",
    # "private" "privatization", "deploying" "deployment", or "busy" "business". So the text's word
    # may be at most `_ENDING` letters longer than the keyword's, and where stemming took a suffix of
    # more than `_ENDING` letters off the keyword it must begin as the keyword does but for its last two.
    if len(text[3]) > len(keyword[3]) + _ENDING:
        return False
    if len(keyword[3]) - len(keyword[0]) > _ENDING and not text[3].startswith(keyword[3][:-2]):
        return False
    # Where the language's inflections are known, a common word's keyword meets only that word's
    # forms, not a word derived from it that Snowball stems alike ("important" is not "imports", nor
    # "physical" "physics", "marketers" "markets", "seasonal" "season"); a name's meets its derived
    # words ("Japan", "Japanese"): they are about it.
    if text[5] and keyword[5] and text[5] != keyword[5] and not keyword[4]:
        return False
    if text[0] == keyword[0]:
        # A short stem may be two words' ("tennis" read in French is "ten", as "tenir" is): then the
        # words themselves must begin alike too ("war" and "wars", "tax" and "taxes" do).
        return len(keyword[0]) >= 4 or len(os.path.commonprefix((text[3], keyword[3]))) >= min(len(keyword[3]), 4)
    # The twice-stemmed forms are short and collide more: trust them only from four letters, and only
    # where the text's word begins as the keyword's stem.
    return len(keyword[1]) >= 4 and text[1] == keyword[1] and _plain(text[3]).startswith(keyword[0])


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class _Match:
    section: str
    order: int  # position of the section in the configuration
    conditions: int
    strength: int
    agreeing: int  # how many of the section's rules match
    weight: int
    kind: str  # the rule's one kind of condition, or "rule"
    reasons: tuple[str, ...]

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (self.conditions, self.strength, self.agreeing, self.weight, -self.order)


@dataclass(frozen=True, slots=True)
class _Item:
    text: _Text
    path: str
    categories: dict[str, str]  # folded -> as the feed wrote it
    feed_names: dict[str, str]  # folded name and URL -> as written
    index: _KeywordIndex  # the rules' keywords, by which `text.possible` was found


def _excluded(item: _Item, not_keywords: Sequence[str]) -> str | None:
    for keyword in not_keywords:
        if item.text.where(keyword):
            return keyword
    return None


@lru_cache(maxsize=1024)
def _folded(values: tuple[str, ...]) -> tuple[str, ...]:
    """A rule's categories or feeds as `_fold` compares them, folded once, not once per item."""
    return tuple(map(_fold, values))


def _match_rule(rule: Rule, item: _Item) -> tuple[int, list[str]] | None:
    """(keyword weight, reasons) when every condition of the rule holds, else None."""
    reasons: list[str] = []
    if rule.feeds:
        hit = next((item.feed_names[f] for f in _folded(rule.feeds) if f in item.feed_names), None)
        if hit is None:
            return None
        reasons.append(f"the feed '{hit}'")
    if rule.categories:
        hit = next((item.categories[c] for c in _folded(rule.categories) if c in item.categories), None)
        if hit is None:
            return None
        reasons.append(f"category '{hit}'")
    if rule.url_patterns:
        pattern = _url_match(rule.url_patterns, item.path) if item.path else None
        if pattern is None:
            return None
        # One verb per reason: "<reasons> match(es) section X" follows ("URL path ... matches pattern
        # ... matches section ..." read as a stutter).
        reasons.append(f"URL pattern '{pattern}' (in the path '{item.path}')")
    weight = 0
    possible = item.text.possible
    for group in ((rule.keywords,) if rule.keywords else ()) + rule.keyword_groups:
        if possible is not None and possible.isdisjoint(item.index.group(group)):
            return None  # no keyword of the list can occur in the text (most rules, for most items)
        found: list[str] = []
        seen: set[tuple[tuple[str, str, bool], ...]] = set()  # stems only: "Putin" and "Putins" are one
        for keyword in group:
            if possible is not None and keyword not in possible:
                continue
            where = item.text.where(keyword)
            if not where:
                continue
            forms = _keyword_forms(keyword, item.text.keyword_lang(keyword))
            stems = tuple(f[:3] for f in forms)
            if stems not in seen:  # "Trump" listed twice, or "Putin" and "Putins", count once
                seen.add(stems)
                # A phrase is more specific than a word: each word of the keyword counts.
                weight += (2 if where == "title" else 1) * len(forms)
                found.append(f"'{keyword}' in the {where}")
        if not found:
            return None
        reasons.append("keyword " + ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else ""))
    if rule.languages:
        if item.text.lang not in rule.languages:
            return None
        reasons.append(f"language '{item.text.lang}'")
    if rule.not_keywords and _excluded(item, rule.not_keywords):
        return None
    return weight, reasons


def _section_rules(section: Section) -> list[Rule]:
    """The section's own lists, each a one-condition rule, then its combined rules."""
    single = [Rule(**{kind: values}) for kind in _STRENGTH if (values := getattr(section, kind))]
    return single + list(section.rules)


def _best(section: Section, order: int, item: _Item) -> _Match | None:
    if section.not_keywords and _excluded(item, section.not_keywords):
        return None
    best: _Match | None = None
    agreeing = 0
    for rule in _section_rules(section):
        matched = _match_rule(rule, item)
        if matched is None:
            continue
        agreeing += 1
        weight, reasons = matched
        kinds = [k for k in _STRENGTH if getattr(rule, k) or (k == "keywords" and rule.keyword_groups)]
        # `languages` narrows a rule without making it more specific; alone, it ranks below any other.
        candidate = _Match(
            section.name,
            order,
            len(kinds),
            max((_STRENGTH[k] for k in kinds), default=0),
            0,
            weight,
            # The label Classification.rule takes: a condition's kind, or "rule" for several.
            "rule" if len(kinds) + bool(rule.languages) > 1 else kinds[0] if kinds else "languages",
            tuple(reasons),
        )
        if best is None or candidate.key > best.key:
            best = candidate
    if best is None:
        return None
    return _Match(
        best.section, best.order, best.conditions, best.strength, agreeing, best.weight, best.kind, best.reasons
    )


def classify(
    *,
    title: str,
    url: str | None,
    categories: Sequence[str],
    feed_section: str | None,
    sections: Sequence[Section],
    fallback: str,
    summary: str = "",
    feed_names: Sequence[str] = (),
    language: str | None = None,
) -> Classification:
    """The section of one item and the rule that chose it; see the module docstring for the order.

    `feed_names` are the feed's name, title and URL, for rules with `feeds`; `language` is the one
    the feed declares (`Item.language`).
    """
    if feed_section:
        return Classification(feed_section, "feed", f"the feed is configured for section '{feed_section}'")

    text = _Text(title, summary, language)
    index = _index(sections, text.lang)
    text.possible = index.possible(text)
    item = _Item(
        text=text,
        path=_url_path(url) if url else "",
        categories={_fold(c): c.strip() for c in reversed(categories) if c.strip()},
        feed_names={_fold(n): n for n in feed_names if n},
        index=index,
    )
    matches = [m for i, s in enumerate(sections) if (m := _best(s, i, item)) is not None]
    if not matches:
        return Classification(fallback, "fallback", f"no rule matched, so the fallback section '{fallback}'")
    win = max(matches, key=lambda m: m.key)
    rule = _KIND_NAME.get(win.kind, win.kind)
    verb = "matches" if len(win.reasons) == 1 else "match"
    reason = f"{' and '.join(win.reasons)} {verb} section '{win.section}'"
    others = sorted((m for m in matches if m is not win), key=lambda m: m.key, reverse=True)
    if others:
        runner = others[0]
        reason += (
            f"; it outranks section '{runner.section}'"
            if runner.key[:4] < win.key[:4]
            else f"; it ties with section '{runner.section}', which comes later in the configured order"
        )
    return Classification(win.section, rule, reason)


def _keywords_of(section: Section) -> dict[str, None]:
    """Every keyword of a section's rules, once each, in order."""
    groups = [g for rule in _section_rules(section) for g in (rule.keywords, *rule.keyword_groups)]
    return dict.fromkeys(k for g in groups for k in g)


def capital_misses(
    title: str, summary: str, sections: Sequence[Section], language: str | None = None
) -> list[tuple[str, str]]:
    """(section, keyword) of each keyword written with a capital (a name) that the text writes in
    lower case, as it is or with an ending: what `digest sections explain` points out, since an
    operator who wrote "Bitcoin" may have meant the common noun. Acronyms ("UN") are meant as
    capitals and are left out; so is a lower-case word that only shares a stem ("crime" is not
    "Crimea", which is what the capital keeps apart)."""
    folded = unicodedata.normalize("NFKC", f"{title} {summary}").casefold()
    text: _Text | None = None
    misses: list[tuple[str, str]] = []
    for section in sections:
        keywords = _keywords_of(section)
        for keyword in keywords:
            if not keyword[:1].isupper() or keyword.isupper() or keyword.lower() in keywords:
                continue  # not a name, an acronym, or listed in lower case as well ("Film" and "film")
            if not re.search(r"(?<!\w)" + re.escape(keyword.casefold()) + r"\w{0,3}(?!\w)", folded):
                continue
            text = text or _Text(title, summary, language)
            if not text.where(keyword) and text.where(keyword.lower()):
                misses.append((section.name, keyword))
    return misses


def derived_misses(
    title: str, summary: str, sections: Sequence[Section], language: str | None = None
) -> list[tuple[str, str, str]]:
    """(section, keyword, word) of each one-word keyword that the text has only as a derived word
    Snowball stems alike ("cultural" for "culture"): keywords match a word's inflections, not the
    words derived from it, so `digest sections explain` says which word to add to match it too."""
    text = _Text(title, summary, language)
    misses: list[tuple[str, str, str]] = []
    for section in sections:
        for keyword in _keywords_of(section):
            wanted = _keyword_forms(keyword, text.keyword_lang(keyword))
            if len(wanted) != 1 or text.where(keyword):
                continue
            kw = wanted[0]
            for form in (*text.title.forms, *text.summary.forms):
                # What `_same` says with the inflection keys left out: a match those keys alone refused.
                if form[5] and (form[0] == kw[0] or form[1] == kw[1]) and _same((*form[:5], ""), (*kw[:5], "")):
                    misses.append((section.name, keyword, form[3]))
                    break
    return misses
