"""Demo knowledge: our own writing, loaded on a fresh development database."""
