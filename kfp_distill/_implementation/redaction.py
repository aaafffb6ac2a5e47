"""Credentials taken out of URIs before a URI is written where others read it.

Reports, model cards, MLflow parameters and tags, and file names outlive a run and are read by people who
were never meant to hold its credentials: a `user:password@host` URI or a signed URL (`X-Goog-Signature=`,
`sig=`, ...) must not reach them whole.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# Query parameters whose value is a credential: signed URLs (Google Cloud Storage, S3, Azure) and API keys.
_SENSITIVE_PARAMETERS = frozenset({
    "x-goog-signature", "x-goog-credential", "signature", "sig", "token", "key", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token", "access_token", "api_key", "apikey", "password",
})


def _redact_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if equals and value and unquote(name).lower() in _SENSITIVE_PARAMETERS:
        return f"{name}={REDACTED}"
    return parameter


def redact_uri(uri: str) -> str:
    """The URI with its password and credential query values replaced by `***`; anything else unchanged.

    Args:
        uri: A URI, a path or a model name (those without credentials come back as they were, byte for byte).

    Returns:
        `https://user:***@host/data.jsonl` for `https://user:secret@host/data.jsonl`, and
        `https://host/data.jsonl?X-Goog-Signature=***&alt=media` for a signed URL.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:  # not a URI (an unbalanced "[" in a host, say): nothing in it is a credential we know
        return uri
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}" if at and ":" in userinfo else parts.netloc
    query = "&".join(_redact_parameter(parameter) for parameter in parts.query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # as given: urlunsplit would normalize what it does not need to touch
    return urlunsplit(parts._replace(netloc=netloc, query=query))
