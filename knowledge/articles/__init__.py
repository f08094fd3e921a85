"""Knowledge articles: Markdown with revisions, a review lifecycle and feedback."""
