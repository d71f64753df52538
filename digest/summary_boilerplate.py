"""A feed's summary boilerplate ("... Leia mais no Massa News!", "Merci à vous de suivre le flux
RSS de ...", WordPress's "The post <title> appeared first on <site>."), learned and removed. Pure.

Many feeds open or close every summary with the same words: a plea to read the rest on their site,
a greeting, the line a blog plugin adds. In an excerpt of 280 characters that is a third of what a
reader sees, and in every story of the feed. Nothing marks it, so it is learned from repetition
across the items of one feed document (parse sees them together): a run of words that begins or
ends at least half of the summaries (three at least), with each item's own title standing in for
itself ("The post <title> appeared first on ..."). Only a run that reads as whole sentences is
taken: a suffix starts with a capital (a sentence) and a prefix is followed by one, so the common
opening of a feed's analyst notes ("Der Analyst X hat die Einstufung ...", then "für" or "auf")
stays; and never a whole summary, unless half of the feed's summaries are that same text
(`shared_whole`: Hacker News's "Comments").

A podcast's summaries may close with a block of credits or plugs that opens with the same sentences
on every episode and goes on with this episode's own ("The Habitat is a production of Gimlet Media.
It's produced by ... Additional reporting in this episode by ..."): no run ends half of them, so
`learn` finds none. `learn_closing` takes the sentence that opens such a block, repeated whole after
a summary's own first sentence in at least half of them, and `strip` cuts each summary there.

Some feeds' closing line is a template whose blanks are links: Reddit's "submitted by <a>/u/name</a>
to <a>r/sub</a> [link] [42 comments]", a blog's "Posted by <a>author</a> in <a>category</a>". When
no run repeats word for word, `learn_links` reads each run of links as one blank (`_LINK`) and
learns such a line the same way; a summary that is only that line (a Reddit link post) is then left empty. Blanks
stand for links only, never for words: an analyst desk's "The analyst X has kept the rating for Y"
is the news itself, and its blanks are plain words.
"""

from __future__ import annotations

import html as htmllib
import re
from collections import Counter
from collections.abc import Sequence
from itertools import chain

from digest.outlets import same_article

MIN_ITEMS = 3  # fewer summaries cannot show that words repeat
MIN_SHARE = 0.5  # a run on at least half of the feed's summaries
MIN_WORDS = 3  # shorter runs ("[…]", "Read more") are left alone: too little to tell
MAX_WORDS = 40
_TAIL = 8000  # characters of HTML at a summary's end that a closing run (40 words, with its tags) fits in
_TITLE = "\x00"  # an item's own title, in a run learned across items
_LINK = "\x02"  # any one link (<a>...</a>, its text whatever it is), in a run `learn_links` learned
# Any one address written out ("https://goo.gl/OhHEXi"), in a run `learn` learned: a video channel opens
# each description with a link to its shop, a different one from video to video, then the same plug.
_URL = "\x03"
_SCHEMES = ("http://", "https://")
# Words of a run with links that are not links: "submitted by", not "via <a>..."; and a few only,
# as an attribution line has ("Posted by <a> in <a>"): a longer sentence with links is what the
# item says ("The analyst <a>Harbour Capital</a> has kept the rating for <a>Quayside</a> at buy.").
MIN_FIXED, MAX_FIXED = 2, 6


def _with_title(words: list[str], title: str) -> list[str]:
    """The words, with the item's title (when the text quotes it) as one `_TITLE` word."""
    own = title.split()
    if own and len(own) <= len(words):
        n = len(own)
        # The last mention, near the end: a closing line quotes the title ("The post <title> appeared ...").
        for start in range(len(words) - n, max(-1, len(words) - n - MAX_WORDS - 1), -1):
            if words[start] == own[0] and words[start : start + n] == own:
                return [*words[:start], _TITLE, *words[start + n :]]
    return words


def _starts_sentence(word: str) -> bool:
    if word == _TITLE:  # "<title> was originally published in ..."
        return True
    first = word.lstrip("\"'«“‘([¿¡")
    return bool(first) and (first[0].isupper() or first[0].isdigit())


def learn(summaries: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The prefix and the suffix (as words, `_TITLE` for an item's title; empty when none) that are
    one feed's summary boilerplate, from its items' (summary text, title)."""
    # Every summary's ends pass here on every poll: a prefix test, not a regex, per word.
    split = [([_URL if w.startswith(_SCHEMES) else w for w in text.split()], title) for text, title in summaries]
    split = [(words, title) for words, title in split if words]
    if len(split) < MIN_ITEMS:
        return (), ()
    need = max(MIN_ITEMS, MIN_SHARE * len(split))
    # Most feeds have none: a run's first word opens, or its last word closes, that many summaries.
    firsts = Counter(words[0] for words, _ in split)
    lasts = Counter(words[-1] for words, _ in split)
    if firsts.most_common(1)[0][1] < need and lasts.most_common(1)[0][1] < need:
        return (), ()
    texts = [_with_title(words, title) for words, title in split]
    prefixes: Counter[tuple[str, ...]] = Counter()
    suffixes: Counter[tuple[str, ...]] = Counter()
    for words in texts:
        # Only runs that leave a word of the summary's own, and at sentence edges.
        for k in range(MIN_WORDS, min(MAX_WORDS, len(words) - 1) + 1):
            if _starts_sentence(words[k]):
                prefixes[tuple(words[:k])] += 1
            if _starts_sentence(words[-k]):
                suffixes[tuple(words[-k:])] += 1
    prefix = max((p for p, n in prefixes.items() if n >= need), key=len, default=())
    suffix = max((s for s, n in suffixes.items() if n >= need), key=len, default=())
    return prefix, suffix


MIN_CLOSING_WORDS = 5  # a closing block's repeated opening sentence: "Sei beim nächsten Seminar dabei!"
_CLOSES = re.compile(r"[.!?…][\"'»”’)\]]*$")


def _sentences(words: list[str]) -> list[tuple[str, ...]]:
    """The words cut into sentences: after a word that ends one, before a word that may start one
    (not `digest.sentences`, whose pysbd costs per character: this runs on every feed of every poll)."""
    out: list[tuple[str, ...]] = []
    start = 0
    for i in range(len(words) - 1):
        if _CLOSES.search(words[i]) and _starts_sentence(words[i + 1]):
            out.append(tuple(words[start : i + 1]))
            start = i + 1
    out.append(tuple(words[start:]))
    return out


def learn_closing(texts: Sequence[str]) -> tuple[str, ...]:
    """The sentence (as words) that opens one feed's closing block, from its summaries' texts; empty
    when none.

    A sentence of `MIN_CLOSING_WORDS` words or more, repeated whole in at least half of the summaries
    (three at least), that comes after a sentence of the summary's own (one that is not so
    repeated): what opens a summary, or follows only what many others open with too, is `learn`'s
    prefix, and the item's own text may come after it. What follows a closing block's opening is
    the block's part that varies (this episode's guests, music, sponsors), so `strip` cuts from it
    to the end. Of several such sentences (a block repeats many), the one that opens it in most
    summaries."""
    split = [_sentences(words) for words in map(str.split, texts) if words]
    if len(split) < MIN_ITEMS:
        return ()
    need = max(MIN_ITEMS, MIN_SHARE * len(split))
    common = Counter(chain.from_iterable(set(sentences) for sentences in split))
    opens: Counter[tuple[str, ...]] = Counter()
    for sentences in split:
        own = False
        for sentence in sentences:
            if common[sentence] < need:
                own = True
            elif own:
                if len(sentence) >= MIN_CLOSING_WORDS:
                    opens[sentence] += 1
                break
    found = opens.most_common(1)
    return found[0][0] if found and found[0][1] >= need else ()


_A = re.compile(r"<a\b[^>]*>.*?</a>", re.S | re.I)


_BLANKS = re.compile(f"{_LINK}(?:\\s+{_LINK})+")


def links_as_blanks(html: str) -> str:
    """`text_of` a summary with each run of links (one or more, nothing but tags between them) as one
    `_LINK` word: what `learn_links` reads. A run, because a feed's line may end with one link more
    on some items ("[link] [42 comments]", the last one a link to the item's own page that
    `without_read_more` may have taken)."""
    return _BLANKS.sub(_LINK, text_of(_A.sub(f" {_LINK} ", html)))


def learn_links(texts: Sequence[str]) -> tuple[str, ...]:
    """The closing line of one feed's summaries whose blanks are links (`_LINK` words), from their
    `links_as_blanks` texts; empty when none.

    As `learn`'s suffix, on at least half of the summaries, but a run may be a whole summary and may
    start with a small letter ("submitted by"): `strip` takes it only after a block's edge or a
    sentence's end. It has a link and `MIN_FIXED` words that are not links, and starts with a word.
    """
    split = [words for words in map(str.split, texts) if words]
    if len(split) < MIN_ITEMS:
        return ()
    need = max(MIN_ITEMS, MIN_SHARE * len(split))
    lasts = Counter(words[-1] for words in split)
    if lasts.most_common(1)[0][1] < need:
        return ()
    suffixes: Counter[tuple[str, ...]] = Counter()
    for words in split:
        for k in range(MIN_WORDS, min(MAX_WORDS, len(words)) + 1):
            suffixes[tuple(words[-k:])] += 1
    runs = [
        run
        for run, n in suffixes.items()
        if n >= need and run[0] != _LINK and _LINK in run and MIN_FIXED <= len(run) - run.count(_LINK) <= MAX_FIXED
    ]
    return max(runs, key=len, default=())


def shared_whole(texts: Sequence[str]) -> str | None:
    """The text that at least half of one feed's summaries (three at least) are, whole, or None.

    Hacker News gives every item the summary "Comments" (a link to its thread), and a podcast may
    repeat its show's blurb on every episode: a summary that many items share says nothing of any
    of them, whatever its length. `learn` never takes a whole summary; this is that case."""
    present = [t for t in texts if t]
    if len(present) < MIN_ITEMS:
        return None
    text, n = Counter(present).most_common(1)[0]
    return text if n >= max(MIN_ITEMS, MIN_SHARE * len(present)) else None


_LINK_HTML = r"<a\b[^>]*>[^<]{1,80}</a>"  # one link of plain words
_BLOCK_EDGE_END = re.compile(r"(?:<br\s*/?>|</(?:p|div|li|ul|ol|blockquote|h\d)>|<(?:p|div)>)$")


# A summary's closing link of a few words to the item's own article: WordPress's "(more…)",
# "Continue reading", "Read more". The excerpt's "…" says there is more; the title links the article.
_CLOSING_LINK = re.compile(
    r"<a\s[^>]*href=\"([^\"]*)\"[^>]*>([^<]{1,80})</a>((?:\s|&nbsp;|</(?:p|div|span|em|strong|b|i)>)*)$"
)
# ... or a paragraph of its own of a few words more: Medium's "Continue reading on Financial Times »",
# whose publication's name differs from item to item, so that no run repeats for `learn` to find.
_READ_MORE_WORDS, _OWN_LINE_WORDS = 3, 8
_OWN_LINE_BEFORE = re.compile(r"<(?:br|p|div|li)\b[^>]*>(?:\s|&nbsp;)*$")


def without_read_more(summary_html: str, url: str | None) -> str:
    """`summary_html` without a closing link to the item's own `url` (its fragment aside:
    "...#more-602924") of at most three words, or of at most eight in a paragraph of its own; as it
    was when there is none or nothing else would be left."""
    if not url or "</a>" not in summary_html[-200:]:
        return summary_html
    m = _CLOSING_LINK.search(summary_html, max(0, len(summary_html) - 400))
    if m is None or not same_article(m.group(1), url):
        return summary_html
    words = len(m.group(2).split())
    if words > _READ_MORE_WORDS and (
        words > _OWN_LINE_WORDS or not _OWN_LINE_BEFORE.search(summary_html, max(0, m.start() - 100), m.start())
    ):
        return summary_html
    out = summary_html[: m.start()].rstrip() + m.group(3)
    return out if text_of(out) else summary_html


# A closing list of the post's tags, each a link to the blog's tag page: kottke's "<strong>Tags:</strong>
# <a>art</a>&nbsp;&nbsp; <a>Tim Easley</a>". Its words differ on every item and it is two words and
# a blank to `learn_links` (under MIN_WORDS), so no run is learned; as an excerpt's end it read
# "... (via colossal) Tags: art Tim Easley". Only a label of these, then links and nothing else.
_TAG_LIST = re.compile(
    r"(?:<(?:strong|b|em|i)>)?\s*(?:Tags|Tagged(?: with)?|Filed under|Categories|Topics|Schlagwörter|Étiquettes"
    r"|Etiquetas|Теги|Метки)\s*:\s*(?:</(?:strong|b|em|i)>)?"
    r"(?:(?:\s|&nbsp;|\xa0|,|·|\|)*" + _LINK_HTML + r")+(?:\s|&nbsp;|\xa0|</(?:p|div|span|li|ul)>)*$"
)


def without_tag_list(summary_html: str) -> str:
    """`summary_html` without a closing list of tags (`_TAG_LIST`) that follows text of its own: after
    a block's edge or a sentence's end; as it was when there is none or nothing else would be left."""
    tail = max(0, len(summary_html) - 3000)
    if "</a>" not in summary_html[-200:] or ":" not in summary_html[tail:]:
        return summary_html
    m = _TAG_LIST.search(summary_html, tail)
    if m is None:
        return summary_html
    before = summary_html[: m.start()].rstrip()
    if not (_BLOCK_EDGE_END.search(before) or _SENTENCE_END.search(text_of(before[-400:]))):
        return summary_html  # "... is one of the <a>tags</a>": a sentence's own words
    return before if text_of(before) else summary_html


# A run is whole sentences when punctuation or a block's edge (a paragraph, a line break) bounds it:
# "... ele bateu o carro... Leia mais no Massa News!" or "<br> Weitere Informationen ...", but not
# "von 95 auf 120 USD belassen." nor "Der Analyst X hat die Einstufung für" before a company's name.
_SENTENCE_END = re.compile(r"[.!?…:]$")
_BLOCK = r"<(?:br|/?p|/?div|/?li|/?h\d|/?blockquote|/?td|/?tr)\b[^>]*>"
_BLOCK_AFTER = re.compile(r"(?:\s|&nbsp;|</(?:a|strong|em|b|i|span)>)*(?:" + _BLOCK + "|$)")
_BLOCK_OR_SENTENCE_BEFORE = re.compile(
    r"(?:^|[.!?…:]|" + _BLOCK + r")(?:\s|&nbsp;|<(?:a|strong|em|b|i|span)\b[^>]*>)*$"
)

# Between two characters of the run, the HTML may hold tags (a link around "Massa News"); a space may
# be any whitespace, &nbsp; or a tag; a character may be written as an entity.
_GAP = r"(?:<[^>]*>)*"
_SPACE = r"(?:\s|&nbsp;|&#160;|<[^>]*>)+"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;|&#34;", "'": "&#39;|&#x27;|&apos;", "\xa0": "&nbsp;"}


# `_LINK`: one link or several in a row (tags and spaces between them), whatever their text
_ONE_LINK = r"<a\b[^>]*>(?:(?!</a>).)*</a>"
_ANY_LINK = f"{_ONE_LINK}(?:(?:\\s|&nbsp;|<(?!a\\b)[^>]*>)*{_ONE_LINK})*"
# `_URL`: an address as the text has it, or as a link whose text it is
_ANY_URL = r"(?:<a\b[^>]*>)?https?://[^\s<]+(?:</a>)?"


def _pattern(words: Sequence[str], title: str) -> str:
    """The run as it may be written in HTML; it starts and ends on one of its characters (or on a
    link's tag, for a `_LINK`)."""
    spelled = " ".join(title if w == _TITLE else w for w in words)
    out: list[str] = []
    for ch in spelled:
        if ch.isspace():
            out.append(_SPACE)
            continue
        if ch == _LINK:
            out.append(_ANY_LINK)
            continue
        if ch == _URL:
            out.append(_ANY_URL)
            continue
        if out and out[-1] != _SPACE:
            out.append(_GAP)
        alternatives = [re.escape(ch), *_ENTITIES.get(ch, "").split("|")]
        out.append("(?:" + "|".join(a for a in alternatives if a) + ")")
    return "".join(out)


def strip(
    summary_html: str, title: str, prefix: Sequence[str], suffix: Sequence[str], block: Sequence[str] = ()
) -> str:
    """`summary_html` without the learned runs, its tags left in place, and cut where its closing
    `block` (`learn_closing`'s opening sentence) opens; as it was when a run is not found in it, or
    nothing of its own would be left. A summary that is only a closing line with links
    (`learn_links`) is left empty: "submitted by ... [link] [42 comments]" is no excerpt."""
    out = summary_html
    if block:
        for opening in re.finditer("(" + _pattern(block, title) + ")", out):
            if _BLOCK_OR_SENTENCE_BEFORE.search(out, 0, opening.start(1)):
                out = out[: opening.start(1)]
                break
    if prefix:
        m = re.match(r"(?:\s|<[^>]*>)*(" + _pattern(prefix, title) + ")", out)
        if m and (_SENTENCE_END.search(prefix[-1]) or _BLOCK_AFTER.match(out, m.end(1))):
            out = out[: m.start(1)] + out[m.end(1) :]
    if suffix:
        # Searched for in the summary's last characters only: a run is a few sentences, and a search
        # from every place of a long article would cost a run's length at each ("a a a a ...").
        closing = re.compile("(" + _pattern(suffix, title) + r")(?:\s|&nbsp;|</[^>]*>)*$", re.S)
        m = closing.search(out, max(0, len(out) - _TAIL))
        if m and _BLOCK_OR_SENTENCE_BEFORE.search(out, 0, m.start(1)):
            out = out[: m.start(1)] + out[m.end(1) :]
    if out is summary_html:
        return summary_html
    if not text_of(out):
        return "" if _LINK in suffix else summary_html
    return out  # its tags may no longer balance: the caller sanitises it again, then `tidy()`


_EMPTY = re.compile(r"<(p|div|span|a|strong|em|b|i)(?:\s[^>]*)?>(\s*)</\1>")


def tidy(html: str) -> str:
    """Sanitised HTML without the elements a removed run left empty (a link in a paragraph)."""
    for _ in range(3):
        html, n = _EMPTY.subn(r"\2", html)  # "records.<strong> </strong>Kafka" keeps its space
        if not n:
            break
    return html.strip()


def text_of(html: str) -> str:
    """Sanitised HTML's text, cheaply (nh3 escaped every "<" that is not a tag's)."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]*>", " ", html)).split())


# A summary's closing "read more" in plain words, no link: UOL's "... além de senadores por São
# Paulo. Leia mais (09/24/2018 - 19h22)", with the time the item was filed. Only those words, then
# at most a bracketed date or time, an arrow or an ellipsis, and nothing else; and only after a
# sentence's end or a block's edge, so "... nobody would read more than that" keeps its words.
_READ_MORE_PHRASES = (
    "read more",
    "continue reading",
    "leia mais",
    "leer más",
    "lire la suite",
    "weiterlesen",
    "leggi tutto",
    "подробнее",
    "читать далее",
)
_READ_MORE_TEXT = re.compile(
    r"(?:" + "|".join(_READ_MORE_PHRASES) + ")"
    r"(?:\s*\([\d/.:\- h]{4,30}\))?\s*(?:»|›|→|\.\.\.|…)?"
    r"(?:\s|&nbsp;|\xa0|</(?:p|div|span|li|ul)>)*$",
    re.I,
)


def without_read_more_text(summary_html: str) -> str:
    """`summary_html` without a closing "read more" in plain words (`_READ_MORE_TEXT`) that follows
    text of its own; as it was when there is none or nothing else would be left."""
    tail = summary_html[-200:]
    # The phrases' letters, compared in C before the expression runs (3% of a poll's parse time).
    if not any(phrase in tail.lower() for phrase in _READ_MORE_PHRASES):
        return summary_html
    m = _READ_MORE_TEXT.search(summary_html, max(0, len(summary_html) - 200))
    if m is None:
        return summary_html
    before = summary_html[: m.start()].rstrip(" \t\n\xa0").removesuffix("&nbsp;").rstrip()
    if not (_BLOCK_EDGE_END.search(before) or _SENTENCE_END.search(text_of(before[-400:]))):
        return summary_html
    before = _OPENED_LAST.sub("", before)  # the paragraph the words stood in: "<p>Read more</p>"
    return before if text_of(before) else summary_html


_OPENED_LAST = re.compile(r"(?:<(?:p|div|li|span|br)\b[^>]*>(?:\s|&nbsp;|\xa0)*)+$")


# A sentence that sends the reader elsewhere ("Read our explainer on ...", "Sign up for ...", "Lire
# aussi ...", "Читайте также ..."): the outlet's promotion, not what happened. Only at a sentence's
# start, as a whole word, and in English with what it points at: "Watch sales fell", "Watchdog" and
# "Readers" are news.
CALL_TO_ACTION = re.compile(
    r"[\"'«“‘„(\[¿¡]*\s*(?:"
    r"(?:read|watch) (?:our|the full|the latest|more|it|this|here|now|live|about|how|what|why)|watch:"
    r"|listen (?:to|now|here|live)|subscribe|sign up|follow us|find out|join us|check out|learn more"
    r"|don't miss|see (?:also|more|our|the full|photos|pictures|the video)"
    r"|(?:à )?lire aussi|lisez|voir aussi|regardez|écoutez|abonnez-vous|inscrivez-vous"
    r"|lesen sie|sehen sie|hören sie|abonnieren sie|folgen sie|mehr zum thema"
    r"|lee también|lea también|escucha|suscríbete|síguenos|ascolta|iscriviti|seguici"
    r"|leia também|veja também|assista|ouça|inscreva-se|siga-nos|saiba mais"
    r"|читайте|смотрите|слушайте|подписывайтесь"
    r")(?![\w-])",
    re.I,
)


# Where a summary's next sentence may start: after a stop and a space, or at a block's edge.
_SENTENCE_STARTS = re.compile(  # each opening with one character, which the engine looks for in C
    r"[.!?…](?:\s|&nbsp;|\xa0)+|<(?:br\s*/?|/(?:p|div|li))>(?:\s|<(?:p|div|li)\b[^>]*>)*"
)
_CLOSING_CALL_CHARS = 250  # a closing call is a sentence or two; more is the item's own text
_LEADING_TAGS = re.compile(r"(?:<[^>]*>|\s)*")


def without_closing_calls(summary_html: str) -> str:
    """`summary_html` without its closing sentences that send the reader elsewhere (`CALL_TO_ACTION`:
    a podcast's "Subscribe on Apple Podcasts or wherever you listen to shows.", "Sign up for our
    newsletter and ...", "Find out more at fi.google.com."), one after another from the end, each
    after a sentence of the item's own; as it was when nothing else would be left. The synopsis never
    quotes such a sentence; as an excerpt's end it promoted the outlet instead of saying what happened."""
    html = summary_html
    while True:
        # The last sentence start, looked for near the end first: scanning the whole window for every
        # summary cost a poll 3% of its parse time, and most summaries' last sentence is short.
        starts = []
        for window in (_CLOSING_CALL_CHARS + 50, 2 * _CLOSING_CALL_CHARS):
            tail = max(0, len(html) - window)
            starts = [m.end() for m in _SENTENCE_STARTS.finditer(html, tail) if m.end() < len(html)]
            if starts or tail == 0:
                break
        if not starts:
            return html
        last = starts[-1]
        # The last sentence's opening words first (most summaries end with none of them): its text,
        # the whole rest made plain, only then.
        probe = html[last : last + 160]
        probe = probe[_LEADING_TAGS.match(probe).end() :]  # type: ignore[union-attr]  # it matches "" at least
        if not CALL_TO_ACTION.match(htmllib.unescape(probe) if "&" in probe else probe):
            return html
        said = text_of(html[last:])
        if not said or len(said) > _CLOSING_CALL_CHARS or not CALL_TO_ACTION.match(said):
            return html
        before = _OPENED_LAST.sub("", html[:last].rstrip())
        if not text_of(before):
            return html
        html = before
