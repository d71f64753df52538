"""Sentences of a news summary, in the languages digest quotes from. Pure.

Splitting on "." is wrong wherever news is written: "U.S. President", "Dr. Smith", "J. R. R. Tolkien",
"т. е.", "1.5 млн", a full stop inside quotes. Two libraries ship the rules for this, so nothing is
downloaded at run time and nothing is learnt from data here:

* Russian (and other Cyrillic text): razdel, the Natasha project's rule-based splitter, which knows
  Russian abbreviations ("т. е.", "г.", "руб."), initials ("А. С. Пушкин") and «ёлочки» quotes.
* Everything else: pysbd, the Golden Rules port, with its language's abbreviation list. pysbd has no
  Portuguese rules; Spanish ones stand in (the same "Sr.", "Dra.", "p. ex." habits and quote marks).
  Languages pysbd does not know fall back to its English rules, which only cut at ". ", "! ", "? ".

`split()` returns each sentence exactly as it occurs in the text (stripped of surrounding space),
so a caller can quote it and prove it is a quotation: `sentence in text` holds for every result.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pysbd
import razdel

from digest import words
from digest.sanitize import BLOCK_SEPARATOR

LANGUAGES = ("en", "ru", "fr", "de", "es", "it", "pt")
_PYSBD = {"en": "en", "fr": "fr", "de": "de", "es": "es", "it": "it", "pt": "es", "ru": "ru"}
_TITLE_AT_END = re.compile(r"(?:^|\s)(?:Sr|Sra|Srta|Dr|Dra|Mr|Mrs|Ms|Prof|Hr|Mme|Mlle|Sig|Sig\.ra|Dott)\.$")
_QUOTE_END = re.compile(r"(?:[.!?…][\s\u00a0\u202f]?[»”\"]|[»”\"][.!?])(?=\s+[«“\"¿¡]?[A-ZÀ-ÖØ-Þ])")


@lru_cache(maxsize=16)
def _segmenter(language: str) -> pysbd.Segmenter:
    return pysbd.Segmenter(language=_PYSBD.get(language, "en"), clean=False, char_span=False)


@lru_cache(maxsize=4096)
def _split(text: str, language: str | None) -> tuple[str, ...]:
    return tuple(_split_uncached(text, language))


def split(text: str, language: str | None = None) -> list[str]:
    """The sentences of `text`, in order, each a verbatim substring of it (see `_split_uncached`).

    Cached: an edition splits the same summary for its story, its top block and its Press Review.
    """
    return list(_split(text, language))


def _split_uncached(text: str, language: str | None = None) -> list[str]:
    """The sentences of `text`, in order, each a verbatim substring of it.

    `language` is an ISO 639-1 code; None reads it off the text as clustering and sections do
    (`words.language_of`).
    """
    text = text.strip()
    if not text:
        return []
    lang = language or words.language_of(text)
    if lang == "ru":
        pieces = [s.text for s in razdel.sentenize(text)]
    else:
        # process() is segment() without its span pass, which compiles one regex per sentence; the spans
        # are found again by _verbatim with str.find.
        processed = _segmenter(lang).processor(text).process()
        pieces = _after_closing_quotes(_join_titles([str(p).strip() for p in processed]))
    return _verbatim(text, _at_block_ends(pieces))


def _at_block_ends(pieces: list[str]) -> list[str]:
    # digest.sanitize joins two blocks (paragraphs, list items) with " · " where the first ends with no
    # stop ("... 1,700 sites · Findings run counter ..."): a sentence never runs across it.
    if not any(BLOCK_SEPARATOR in p for p in pieces):
        return pieces
    return [part for p in pieces for part in p.split(BLOCK_SEPARATOR)]


def _join_titles(pieces: list[str]) -> list[str]:
    # pysbd's Spanish rules end a sentence after "Sr." (a bug of its abbreviation pass): a title before a
    # name never ends a sentence in any of these languages, so such a piece is joined to the next.
    out: list[str] = []
    for piece in pieces:
        if out and _TITLE_AT_END.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _after_closing_quotes(pieces: list[str]) -> list[str]:
    # pysbd keeps 'a déclaré : « Nous verrons. » La hausse...' (and, in Spanish, 'dijo "no". El...') as one
    # sentence: a sentence that ends at a closing quote and is followed by a capital starts a new one.
    out: list[str] = []
    for piece in pieces:
        start = 0
        for end in _QUOTE_END.finditer(piece):
            out.append(piece[start : end.end()])
            start = end.end()
        out.append(piece[start:].strip())
    return [p for p in out if p]


def _verbatim(text: str, pieces: list[str]) -> list[str]:
    # Both libraries return pieces of the input, but a rule may normalise a character: keep only what
    # is found, in order, at or after the end of the previous sentence, so every result is a quotation.
    out: list[str] = []
    at = 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        found = text.find(piece, at)
        if found < 0:
            continue
        out.append(piece)
        at = found + len(piece)
    return out
