"""Import and export of the knowledge base: Markdown with front matter, and JSON Lines."""
