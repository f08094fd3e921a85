"""Article bodies render to HTML that is safe to insert into a page as it is."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from knowledge.articles.rendering import render_markdown, sections

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](javascript:alert(1))",
    '<a href="https://example.com" onclick="steal()">x</a>',
    "<iframe src=https://evil.example></iframe>",
    "<style>body{display:none}</style>",
    '<svg onload="alert(1)"></svg>',
    "```\n</code><script>alert(1)</script>\n```",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!-- <script>alert(1)</script> -->",
]


SAFE_TAGS = {"a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "hr", "img", "li", "ol",
             "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "del"}  # fmt: skip


class Elements(HTMLParser):
    """Every element and attribute the browser would build from the HTML."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


@pytest.mark.parametrize("markdown", HOSTILE)
def test_hostile_markdown_renders_without_active_content(markdown: str) -> None:
    for tag, attributes in Elements(render_markdown(markdown)).found:
        assert tag in SAFE_TAGS
        for name, value in attributes:
            assert not name.startswith("on")
            assert name != "style"
            if name in ("href", "src"):
                assert (value or "").startswith(("https://", "http://", "mailto:"))


def test_ordinary_markdown_keeps_its_structure() -> None:
    html = render_markdown(
        "## Resolution\n\n1. Run `df -h`\n2. See [the runbook](https://runbooks.example/disk)\n\n"
        "```bash\ndu -xh / | sort -h\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert "<h2>Resolution</h2>" in html
    assert "<ol>" in html
    assert "<code>df -h</code>" in html
    assert '<code class="language-bash">' in html
    assert "<table>" in html
    assert 'href="https://runbooks.example/disk"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_text_that_looks_like_html_is_shown_escaped() -> None:
    html = render_markdown("Use <code> tags & set x < y")
    assert "&lt;code&gt;" in html
    assert "&amp;" in html


def test_sections_split_a_body_by_headings() -> None:
    parts = sections("Intro line\n## Symptoms\nDisk full\n## Cause\nLogs\n### Resolution\nRotate")
    assert parts == {"": "Intro line\n", "symptoms": "Disk full", "cause": "Logs",
                     "resolution": "Rotate"}  # fmt: skip


def test_a_body_without_headings_is_one_section() -> None:
    assert sections("just text") == {"": "just text"}
