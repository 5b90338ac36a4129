"""URLs as the inventory writes them (``[[http]] url``, ``backup.s3.endpoint_url``,
``[[redis]] url``): a scheme the client speaks, a host, a port that exists, and no credentials
written into them. A ``user:password@`` in a URL is printed by every error that shows the URL,
and requests turns it into a header nothing redacts: it belongs in a variable."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def masked(parts: SplitResult) -> str:
    """The URL with its user information replaced by ``***``: safe to show."""
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def checked(url: str, schemes: tuple[str, ...], expected: str, credentials: str) -> SplitResult:
    """``url`` split, or ``ValueError`` saying what is wrong with it.

    ``expected`` names the URLs accepted (``an http:// or https:// URL``); ``credentials`` says
    where a user or password goes instead, or is empty when a user alone is fine (Redis ACL
    users: the password is what must not be there).
    """
    if any(c.isspace() for c in url):
        raise ValueError(f"expected {expected} without spaces, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"expected {expected}, got {url!r}")
    if "@" in parts.netloc and credentials:
        raise ValueError(
            f"expected a URL without user:password@ ({credentials}), got {masked(parts)!r}"
        )
    if parts.password is not None:
        raise ValueError(
            "expected a URL without a password (name the variable that holds it in "
            f"password_env), got {masked(parts)!r}"
        )
    if not parts.hostname:
        raise ValueError(f"expected {expected} with a host, got {url!r}")
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        raise ValueError(f"expected {expected} with a port 1-65535, got {url!r}") from None
    return parts
