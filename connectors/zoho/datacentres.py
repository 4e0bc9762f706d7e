"""Zoho data centres: accounts (OAuth) server and API domain per data centre and environment."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: data centre -> (accounts host, API domain suffix)
DATACENTRES: dict[str, tuple[str, str]] = {
    "com": ("accounts.zoho.com", "zohoapis.com"),
    "eu": ("accounts.zoho.eu", "zohoapis.eu"),
    "in": ("accounts.zoho.in", "zohoapis.in"),
    "com.au": ("accounts.zoho.com.au", "zohoapis.com.au"),
    "com.cn": ("accounts.zoho.com.cn", "zohoapis.com.cn"),
    "jp": ("accounts.zoho.jp", "zohoapis.jp"),
    "ca": ("accounts.zohocloud.ca", "zohoapis.ca"),
    "sa": ("accounts.zoho.sa", "zohoapis.sa"),
}

#: environment -> API host prefix (www.zohoapis.com, sandbox.zohoapis.com, ...)
ENVIRONMENTS: dict[str, str] = {
    "production": "www",
    "sandbox": "sandbox",
    "developer": "developer",
}


def accounts_url(datacentre: str) -> str:
    """``https://accounts.zoho.<tld>`` (``accounts.zohocloud.ca`` for Canada)."""
    return f"https://{DATACENTRES[datacentre][0]}"


def api_domain(datacentre: str, environment: str = "production") -> str:
    """``https://www.zohoapis.<tld>`` (or ``sandbox.`` / ``developer.``)."""
    return f"https://{ENVIRONMENTS[environment]}.{DATACENTRES[datacentre][1]}"


def for_environment(domain: str, environment: str) -> str:
    """The token response's ``api_domain`` (always the production host) moved to the
    configured environment: ``https://www.zohoapis.eu`` -> ``https://sandbox.zohoapis.eu``.
    Hosts that do not start with ``www.`` (a test server, a custom domain) are kept."""
    domain = domain.rstrip("/")
    if environment == "production":
        return domain
    parts = urlsplit(domain)
    host = parts.netloc
    if not host.startswith("www."):
        return domain
    host = ENVIRONMENTS[environment] + host[3:]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
