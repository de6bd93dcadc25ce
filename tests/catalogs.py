"""What the template and translation tests share: the shipped library (template sources by
path, catalogs by language) and reading the shipped Babel catalogs."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from notifier.i18n import read_po_texts

LOCALES = Path(__file__).resolve().parent.parent / "locales"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# The shipped template library as the engine seeds it: every file by its path.
SOURCES = {
    path.relative_to(TEMPLATES).as_posix(): path.read_text(encoding="utf-8")
    for path in sorted(TEMPLATES.rglob("*.j2"))
}
PO_TEXTS = read_po_texts(LOCALES)
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def english_fragments(language: str) -> set[str]:
    """Pieces of English source text (8+ characters) that ``language`` translates differently.

    None of them may appear in that language's rendering: it would be untranslated text.
    """
    with (LOCALES / language / "LC_MESSAGES" / "notifier.po").open("rb") as fh:
        catalog = read_po(fh)
    fragments: set[str] = set()
    for message in catalog:
        sources = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = (
            [message.string] if isinstance(message.string, str) else list(message.string or ())
        )
        if not message.id or set(sources) == set(strings):
            continue
        for source in sources:
            pieces = (piece.strip() for piece in PLACEHOLDER.split(source))
            fragments.update(piece for piece in pieces if len(piece) >= 8)
    return fragments
