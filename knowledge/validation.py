"""Input rules shared by every service, so GraphQL, the CLI and MCP agree."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from knowledge.errors import ConflictError, ValidationError

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
USERNAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,78}[a-z0-9])?$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def clean_text(
    value: str, *, field: str, max_length: int, required: bool = True, keep_indent: bool = False
) -> str:
    """Strip, refuse control characters, and enforce a length limit. ``keep_indent``
    only drops blank lines and trailing space: in Markdown, indentation is code."""
    value = value.rstrip().lstrip("\r\n") if keep_indent else value.strip()
    if required and not value.strip():
        raise ValidationError(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise ValidationError(
            f"{field} is at most {max_length} characters (got {len(value)})", field=field
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        raise ValidationError(f"{field} contains control characters", field=field)
    return value


def clean_line(value: str, *, field: str, max_length: int = 200) -> str:
    value = clean_text(value, field=field, max_length=max_length)
    if "\n" in value or "\r" in value:
        raise ValidationError(f"{field} must be a single line", field=field)
    return value


def clean_slug(value: str, *, field: str = "slug") -> str:
    value = value.strip()
    if not SLUG_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{field} must be 1-80 lowercase letters, digits and inner hyphens", field=field
        )
    return value


def clean_username(value: str, *, field: str = "username") -> str:
    value = value.strip()
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{field} must be 1-80 lowercase letters, digits, '.', '_' or '-'", field=field
        )
    return value


def clean_email(value: str | None, *, field: str = "email") -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise ValidationError(f"{field} is not an email address", field=field)
    return value


def check_version(*, expected: int, current: int, what: str) -> None:
    if expected != current:
        raise ConflictError(
            f"{what} was changed by someone else (you had version {expected}, "
            f"it is now {current}); reload and apply your change again",
            field="expectedVersion",
            current_version=current,
        )


def aware(value: dt.datetime, *, field: str) -> dt.datetime:
    """A time with an offset, in UTC; a naive time is ambiguous and refused, and so is
    one that is not between years 1 and 9999 once in UTC (9999-12-31T23:59:59-14:00)."""
    if value.tzinfo is None:
        raise ValidationError(
            f"{field} needs a UTC offset (e.g. 2024-05-01T10:00:00Z)", field=field
        )
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError(
            f"{field} is out of range: in UTC it falls outside the years 1 to 9999", field=field
        ) from None


MAX_WINDOW = dt.timedelta(days=366)


def check_window(
    start: dt.datetime,
    end: dt.datetime,
    *,
    field: str = "window",
    longest: dt.timedelta = MAX_WINDOW,
) -> tuple[dt.datetime, dt.datetime]:
    """A reporting window [start, end) in UTC: it must end after it starts and be at most
    ``longest`` long, so one request cannot ask for a scan of all history."""
    start, end = aware(start, field=f"{field}.start"), aware(end, field=f"{field}.end")
    if end <= start:
        raise ValidationError("the window ends before it starts", field=field)
    if end - start > longest:
        raise ValidationError(f"a window is at most {longest.days} days", field=field)
    return start, end
