"""XML from outside, parsed with defusedxml: a document that declares a DTD (external
entities that read local files, entity expansion without end) is refused whole. Shared by
the bank and the invoice imports; each names what it reads."""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException


class XmlRefused(ValueError):
    """The document cannot be read; the message says why in one line."""


def parse(data: bytes, what: str):
    """The root element of ``data``; ``what`` (e.g. "a bank statement") names the document."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmlRefused(f"refused: the XML declares a DTD or entities ({type(exc).__name__}); {what} needs "
                         "neither, and they can read local files or expand without end") from None
    except SafeET.ParseError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}") from None
