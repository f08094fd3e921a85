"""The search index: a derived, rebuildable Whoosh copy of the knowledge in the database.

Everything Whoosh-specific stays in this package (schema, documents, index,
query, sync); the rest of the code sees ``SearchIndex``, ``Indexer`` and
``search()``, so the engine could be replaced.
"""
