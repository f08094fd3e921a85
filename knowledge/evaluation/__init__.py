"""Measuring suggestion quality on labelled incidents (``knownfix eval``)."""
