"""Where the templates live and the gettext message catalogues they speak, read with Babel.

The catalogues are `.po` files in `<templates>/i18n/<lang>/LC_MESSAGES/digest.po`, compiled in
memory when loaded, so neither an installed wheel nor a source checkout needs a build step. An
operator's `templates_dir` may carry its own catalogue, whose entries override the built-in ones.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import NullTranslations, Translations

import digest
from digest.errors import TemplateError

CATALOGUE_DOMAIN = "digest"

# The msgctxt of a section's name. A section's name is its own msgid: the shipped sections' names
# (`digest init`'s eight and the fallback "Other") have entries, so a site in another language shows
# them in it; an operator's own name has none and shows as written. The name stays the section's key
# everywhere else (subscribers' choices, anchors, form values): only its label is translated.
SECTION_NAME = "section name"

# The msgctxt of the site's title. `[digest] title`'s default, "Press Review", has an entry, so a site
# that keeps it reads it in its language; an operator's own title has none and shows as written.
SITE_TITLE = "site title"


def builtin_templates_dir() -> Path:
    """The shipped templates: inside the installed package, else the source checkout's top level."""
    packaged = importlib.resources.files("digest") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(digest.__file__).resolve().parents[1] / "templates"


def catalogue_folders(templates_dir: str | None) -> tuple[Path, ...]:
    """The folders a site's messages come from, the built-in one first and the operator's
    `templates_dir` over it: the email, the web pages and the sign-up email all read these, so a
    section or title the operator reworded reads the same in each."""
    folders = [builtin_templates_dir().resolve()]
    if templates_dir:
        folders.append(Path(templates_dir).resolve())
    return tuple(folders)


def catalogue_path(folder: Path, language: str) -> Path:
    """Where a templates folder keeps a language's messages (the gettext layout)."""
    return folder / "i18n" / language / "LC_MESSAGES" / f"{CATALOGUE_DOMAIN}.po"


def _read_catalogue(path: Path, language: str) -> Translations:
    try:
        with path.open("rb") as po:
            catalogue = read_po(po, locale=language, domain=CATALOGUE_DOMAIN, abort_invalid=True)
        mo = BytesIO()
        write_mo(mo, catalogue)  # compiled in memory: a source checkout needs no build step
    except (OSError, UnicodeDecodeError, ValueError, PoFileError) as exc:
        raise TemplateError(f"The message catalogue {path} cannot be read: {exc}.") from exc
    mo.seek(0)
    return Translations(mo, domain=CATALOGUE_DOMAIN)


def section_label(messages: NullTranslations, name: str) -> str:
    """How a section's name reads in the catalogue's language (the name itself when none is given)."""
    return str(messages.pgettext(SECTION_NAME, name))


def site_title(messages: NullTranslations, title: str) -> str:
    """How the site's title reads in the catalogue's language (the title itself when none is given)."""
    return str(messages.pgettext(SITE_TITLE, title))


def title_in_site_language(title: str, language: str, templates_dir: str | None) -> str:
    """The site's title as its email and pages show it, for what shows nothing else of the catalogues
    (the OPML export)."""
    return site_title(load_translations(language, catalogue_folders(templates_dir)), title)


def load_translations(language: str, folders: Iterable[Path]) -> NullTranslations:
    """The language's messages from each folder's catalogue, later folders overriding earlier ones.

    An entry missing everywhere (or a language with no catalogue at all) shows its msgid.
    """
    merged: Translations | None = None
    for folder in folders:
        path = catalogue_path(folder, language)
        if not path.is_file():
            continue
        found = _read_catalogue(path, language)
        if merged is None:
            merged = found
        else:
            merged.merge(found)  # entry by entry; untranslated entries were left out by write_mo
    return merged if merged is not None else NullTranslations()
