"""The Whoosh schema: one document per article, known error or resolved incident.

Text fields are stemmed and weighted (BM25F field boosts): a title match counts
more than a body mention. Facet fields are stored and sortable so facet counts
come from columns, not from stored documents.
"""

from __future__ import annotations

from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema

from knowledge.search.analysis import analyzer as text_analyzer

META_KEY = "__meta__"
# Kept in the meta document: an index built for another version (other fields or
# analyzers) is treated as unreadable and rebuilt from the database on start.
SCHEMA_VERSION = "5-title-meaning"
KINDS = ("article", "known_error", "incident")

# Boosts: the title says what a document is about, the symptoms are what a
# responder sees, tags and signatures are curated; long bodies say a lot of things.
BOOSTS = {
    "title": 3.0,
    "summary": 1.5,
    "symptoms": 1.5,
    "cause": 1.0,
    "resolution": 1.0,
    "body": 1.0,
    "tags": 2.0,
    "signatures": 2.0,
    # How reporters described incidents the document resolved: their words, not the
    # author's; weighed low, as it is second-hand and grows with use.
    "reported": 0.5,
}
TEXT_FIELDS = tuple(BOOSTS)
# What a search is limited to (``service._visibility``), besides tags.
FILTER_FIELDS = ("kind", "status", "category", "services")
HIGHLIGHT_FIELDS = ("title", "summary", "symptoms", "cause", "resolution", "body")


def meta_document(seq: int) -> dict[str, object]:
    return {"key": META_KEY, "kind": "meta", "status": SCHEMA_VERSION, "seq": seq}


def build_schema() -> Schema:
    analyzer = text_analyzer()
    text = {
        name: TEXT(analyzer=analyzer, field_boost=boost, spelling=name in ("title", "body"))
        for name, boost in BOOSTS.items()
        if name != "tags"
    }
    return Schema(
        key=ID(unique=True, stored=True),
        kind=ID(stored=True, sortable=True),
        status=ID(stored=True, sortable=True),
        category=ID(stored=True, sortable=True),
        services=KEYWORD(stored=True, commas=True, lowercase=True),
        tags=KEYWORD(
            stored=True, commas=True, lowercase=True, scorable=True, field_boost=BOOSTS["tags"]
        ),
        seq=NUMERIC(int, bits=64, stored=True),
        # The title's sentence vector (``knowledge/semantic``) of articles and known
        # errors, as float16 bytes: computed once by the index writer, since a title
        # costs milliseconds to encode and a suggestion compares twenty of them.
        meaning=STORED(),
        **text,
    )
