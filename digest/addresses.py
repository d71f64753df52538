"""Subscriber addresses: syntax checked with email-validator (no DNS: imports must work offline), the
ASCII spelling of an address's domain that SMTP and the headers carry, and the mailbox an address
reaches, which the sign-up form limits its confirmations by."""

from __future__ import annotations

import unicodedata

import idna

from digest.errors import SubscriberError


def validate_email(address: str) -> str:
    """The normalised address, or SubscriberError saying what is wrong with it.

    The domain is lower-cased, the local part kept as written: RFC 5321 section 2.4 lets a mailbox's
    own server tell "Ann" from "ann", so digest mails the spelling it was given (`address_key` is how
    two spellings are known for one subscriber). An internationalised domain is kept in its Unicode
    form (``user@bücher.de``), the form people read; `ascii_domain` gives the form that goes on the wire.
    """
    import email_validator  # 50 ms of imports: only where addresses are checked, not on every send

    try:
        info = email_validator.validate_email(address.strip(), check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        raise SubscriberError(f"{address!r} is not a valid email address: {exc}") from None
    return info.normalized


def address_key(address: str) -> str:
    """What an address is known by: "Ann@X.org" and "ann@x.org" are one subscriber, one suppression.

    Hardly any mail server tells local parts apart by case, and two subscriptions for one mailbox
    would mail it twice; so duplicates are found on the lower-cased address, while the address is
    mailed as written. Frozen: the suppressions' hashes and the stored keys (0013) were made with it.
    """
    return address.strip().lower()


# Providers that deliver every spelling of a local part with its dots moved or dropped to one mailbox.
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
SUBADDRESS = "+"  # RFC 5233's separator as Gmail, Outlook, iCloud, Fastmail and Postfix's default read it


def mailbox(address: str) -> str:
    """The mailbox a valid address (`validate_email`'s) most likely reaches, for counting what is
    sent to it: the local part without a "+tag" (RFC 5233 subaddress), folded (NFKC, case), and
    at Gmail without dots. ``V.ictim+news1@googlemail.com`` -> ``victim@gmail.com``.

    Never an address to send to or store: two people may share a key (``ann+x@`` and ``ann+y@`` at
    a server that keeps them apart), which only makes one of them wait for a confirmation window;
    one person with many keys is who the sign-up form's per-address limit is for.
    """
    local, _, domain = address.rpartition("@")
    local = unicodedata.normalize("NFKC", local).casefold()
    local = local.split(SUBADDRESS, 1)[0] or local
    domain = unicodedata.normalize("NFKC", domain).casefold().rstrip(".")
    if domain in _DOTLESS:
        local, domain = local.replace(".", "") or local, _DOTLESS[domain]
    return f"{local}@{domain}"


def ascii_domain(address: str) -> str:
    """`address` with its domain as IDNA A-labels: ``user@bücher.de`` -> ``user@xn--bcher-kva.de``.

    RFC 5890 section 2.3.2.1 and RFC 5321 section 2.3.5: an A-label is the domain's own name in
    DNS and is valid on the wire whatever the server offers, so an address whose local part is
    ASCII needs no SMTPUTF8 (RFC 6531) anywhere once its domain is written so. The conversion is
    the `idna` package's IDNA 2008 with UTS 46 mapping, as email-validator's ``ascii_email`` does;
    not Python's "idna" codec, which is IDNA 2003 and spells ``straße.de`` as another domain
    (``strasse.de``). An ASCII address comes back unchanged; the local part is never touched.
    Raises SubscriberError when the domain cannot be written in A-labels.
    """
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        raise SubscriberError(f"{address!r} is not an address with a domain.")
    try:
        return f"{local}@{idna.encode(domain.rstrip('.'), uts46=True).decode('ascii')}"
    except UnicodeError as exc:  # idna.IDNAError is one: no fallback, an address must be right
        reason = str(exc).rstrip(".")
        raise SubscriberError(f"The domain of {address!r} cannot be written in ASCII (IDNA): {reason}.") from None


def a_label_host(name: str) -> str:
    """A host name as IDNA A-labels, as a browser spells it: ``straße.de`` -> ``xn--strae-oqa.de``.

    IDNA 2008 with UTS 46 mapping, nontransitional as the WHATWG URL standard is; Python's "idna"
    codec (IDNA 2003) would spell that host ``strasse.de``, another domain and perhaps another
    owner's. A name IDNA 2008 refuses but IDNA 2003 takes (an emoji domain a feed links to) gets the
    codec's spelling, as browsers that still open such links do. Raises UnicodeError when neither can.
    """
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name.encode("idna").decode("ascii")
