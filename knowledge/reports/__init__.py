"""Reports for knowledge managers: what is missing, stale, failing, duplicated, and
what works. ``service`` is the entry point; each section has a module of its own."""
