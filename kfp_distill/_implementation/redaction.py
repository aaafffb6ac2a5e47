"""Credentials taken out of URIs before a URI is written where others read it.

Reports, model cards, MLflow parameters and tags, logs and file names outlive a run and are read by people who
were never meant to hold its credentials. What a URI may carry a credential in is redacted, whatever it holds:
the user info (`user:password@`, and a token given as the user name, `https://TOKEN@host`), the values of query
and fragment parameters whose names servers send credentials under (signed URLs' `X-Goog-Signature=`, `sig=`,
OAuth's `code=` and `access_token=`, API keys, ...), each link of an fsspec chain (`simplecache::https://...`)
and each URI behind a prefix its reader strips (`hf:https://...`), and a URI urlsplit cannot read, past its
scheme, when it holds an `@` or an `=`.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_plus, urlsplit

REDACTED = "***"
# Parameter names whose value is a credential, compared without case, "-", "_", "." and spaces, so that
# `api_key`, `api-key` and `X-API-Key` are one name: signed URLs (Google Cloud Storage, S3, Azure), OAuth
# and API keys. A name ending in one of _SECRET_NAME_ENDINGS is one too (`x-amz-security-token`,
# `client_secret`, `refresh_token`). Keep both lists when a service adds a name.
_SECRET_NAMES = frozenset({
    "sig", "key", "code", "auth", "authorization", "pass", "pwd", "jwt", "session", "sessionid", "otp",
})
_SECRET_NAME_ENDINGS = (
    "token", "secret", "signature", "password", "passwd", "credential", "credentials", "apikey", "secretkey",
    "privatekey",
)
_IGNORED_IN_NAMES = re.compile(r"[\s._-]+")
# fsspec chains URIs with "::" (`simplecache::gs://b/x`); an IPv6 host (`[::1]`) is not a link boundary.
_IPV6_LITERAL = re.compile(r"\[[0-9A-Za-z:.%~-]*\]")
# A URI with more places to read it from (links and URIs inside them) is read as unreadable: no URI has that many,
# and reading one from every place takes quadratic time.
_MAX_STARTS = 8
# RFC 3986, appendix B: a URI's scheme, authority, path, query and fragment, for any string.
_URI_PARTS = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)
# Where a URI starts: a scheme and "://". Tried only where a run of scheme characters starts, so a long run is
# scanned once.
_URI_START = r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://"
_URI_STARTS = re.compile(_URI_START)
# A URI in free text, to the next space (a closing quote goes with it: a secret may hold one).
_URIS_IN_TEXT = re.compile(_URI_START + r"\S+")


def _secret_name(name: str) -> bool:
    name = _IGNORED_IN_NAMES.sub("", unquote_plus(name)).lower()
    return name in _SECRET_NAMES or name.endswith(_SECRET_NAME_ENDINGS)


def _parameter_spans(parameters: str, offset: int) -> list[tuple[int, int]]:
    """Where the values of secret parameters are in `a=1&sig=...` (found at `offset` of the URI).

    ";" separates parameters for some servers; a secret value still runs to the next "&", so a ";" in it never
    leaves its tail shown.
    """
    spans = []
    parameter_start = offset
    for parameter in parameters.split("&"):
        piece_start = parameter_start
        for piece in parameter.split(";"):
            name, equals, _ = piece.partition("=")
            if equals and _secret_name(name):
                spans.append((piece_start + len(name) + 1, parameter_start + len(parameter)))
                break
            piece_start += len(piece) + 1
        parameter_start += len(parameter) + 1
    return spans


def _secret_spans(uri: str) -> list[tuple[int, int]]:
    """Where the credential-bearing parts of one URI are: its user info, and its secret parameters' values."""
    parts = _URI_PARTS.match(uri)  # matches any string
    authority = parts.group(2)
    try:
        urlsplit(uri)
    except ValueError:  # an unbalanced "[" in the host, say: what a client reads from it is anyone's guess
        return _unreadable_spans(uri)
    spans = []
    if authority is not None and "@" in authority:
        spans.append((parts.start(2), parts.start(2) + authority.rindex("@")))
    for query_or_fragment in (4, 5):
        if parts.group(query_or_fragment) is not None:
            spans += _parameter_spans(parts.group(query_or_fragment), parts.start(query_or_fragment))
    return spans


def _unreadable_spans(uri: str) -> list[tuple[int, int]]:
    """A URI that cannot be read for sure: everything past its scheme, when it may hold a credential at all."""
    normalized = unicodedata.normalize("NFKC", uri)  # what urlsplit checks a host against
    if "@" not in normalized and "=" not in normalized:
        return []
    parts = _URI_PARTS.match(uri)
    return [(parts.start(2) if parts.group(2) is not None else 0, len(uri))]


def _links(uri: str) -> list[tuple[int, str]]:
    """The URI split at fsspec's "::" (except inside an IPv6 host), each link with its offset in the URI."""
    literals = iter(match.span() for match in _IPV6_LITERAL.finditer(uri))
    literal = next(literals, None)
    links, start, searched = [], 0, 0
    while (boundary := uri.find("::", searched)) != -1:
        while literal is not None and literal[1] <= boundary:
            literal = next(literals, None)
        if literal is not None and literal[0] < boundary:  # inside `[::1]`
            searched = literal[1]
            continue
        links.append((start, uri[start:boundary]))
        start = searched = boundary + 2
    return [*links, (start, uri[start:])]


def _views(uri: str) -> list[tuple[int, str]] | None:
    """The ways a client may read `uri`, each with its offset: each link of an fsspec chain, the URI read whole
    from each link on, and both again from each scheme inside a link (`hf:https://...`, a URI behind a prefix
    its reader strips). None when there are too many to read each (see `_MAX_STARTS`)."""
    links = _links(uri)
    starts = [
        (offset, start)
        for offset, link in links
        for start in [0, *(match.start() for match in _URI_STARTS.finditer(link) if match.start() > 0)]
    ]
    if len(starts) > _MAX_STARTS:
        return None
    link_of = dict(links)
    return [
        view
        for offset, start in starts
        for view in ((offset + start, link_of[offset][start:]), (offset + start, uri[offset + start:]))
    ]


def redact_uri(uri: str) -> str:
    """The URI with every part that may carry a credential replaced by `***`; anything else unchanged.

    The parts are found in every way a client may read the URI (`_views`), and all of them are redacted, so a
    secret is gone whichever way it is read (a "::" inside a signature, a chained URI's password, a URI behind
    a prefix such as `hf:`).

    Args:
        uri: A URI, an fsspec chain of URIs, a path or a model name (those without credentials come back as
            they were, byte for byte).

    Returns:
        `https://***@host/data.jsonl` for `https://user:secret@host/data.jsonl` or `https://TOKEN@host/...`,
        `https://host/data.jsonl?X-Goog-Signature=***&alt=media` for a signed URL, and
        `simplecache::https://***@host/x` for `simplecache::https://user:secret@host/x`.
    """
    views = _views(uri)
    if views is None:
        spans = _unreadable_spans(uri)
    else:
        spans = [(offset + start, offset + end) for offset, view in views for start, end in _secret_spans(view)]
    merged: list[list[int]] = []
    for start, end in sorted(span for span in spans if span[0] < span[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces, shown_from = [], 0
    for start, end in merged:
        pieces += [uri[shown_from:start], REDACTED]
        shown_from = end
    return "".join(pieces) + uri[shown_from:]


def redact_text(text: str) -> str:
    """The text with every URI in it (`scheme://...`, to the next space) redacted as `redact_uri` does.

    For messages that quote URIs they did not build: a library's error (`401, url='https://...?sig=...'`).
    """
    return _URIS_IN_TEXT.sub(lambda match: redact_uri(match.group()), text)
