"""Paginators: how to ask for the first page, the next one, and (when possible) the n-th.

``page_number`` and ``offset`` are *random access* once the API reports a total: the puller
can then fetch pages in parallel. ``cursor``, ``next_url`` and ``link_header`` depend on the
previous response, so they are strictly sequential; ``single_page`` asks once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from crmsync.errors import BadResponseError
from crmsync_connectors.rest.values import get_path


@dataclass(frozen=True)
class PageRequest:
    """``url`` None: the module's list path with its params; else an absolute next-page URL."""

    index: int  # 0-based position in the pull
    params: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None


class Paginator:
    random_access = False

    def __init__(self, options: Mapping[str, Any], page_size: int) -> None:
        self.options = options
        self.page_size = page_size

    def first(self) -> PageRequest:
        return PageRequest(0, self._params(0))

    def _params(self, index: int) -> dict[str, Any]:
        return {}

    def next(
        self, prev: PageRequest, response: requests.Response, body: Any, count: int
    ) -> PageRequest | None:
        """The request after ``prev`` (whose page had ``count`` records), or None at the end."""
        return None

    def total(self, body: Any) -> int | None:
        path = self.options.get("total_path")
        if not path:
            return None
        value = get_path(body, path, None)
        if isinstance(value, bool) or not isinstance(value, int | str):
            return None
        try:
            return max(0, int(value))
        except ValueError:
            return None


class SinglePage(Paginator):
    pass


class _Numbered(Paginator):
    """Shared by page_number and offset: position-addressed pages."""

    random_access = True

    def __init__(self, options: Mapping[str, Any], page_size: int) -> None:
        super().__init__(options, page_size)
        # Records per page as the API actually serves them: an API that silently caps the page
        # size below what we asked for would otherwise make us skip records.
        self.step = page_size

    def adopt_step(self, served: int) -> None:
        self.step = max(1, served)

    def nth(self, index: int) -> PageRequest:
        return PageRequest(index, self._params(index))

    def page_count(self, total: int) -> int:
        return max(1, math.ceil(total / self.step))

    def next(
        self, prev: PageRequest, response: requests.Response, body: Any, count: int
    ) -> PageRequest | None:
        if count == 0:
            return None  # an empty page always ends the pull (even if a total says otherwise)
        more_path = self.options.get("has_more_path")
        if more_path:
            more = bool(get_path(body, more_path, False))
        else:
            total = self.total(body)
            if total is not None:
                more = (prev.index + 1) * self.step < total
            else:
                more = count >= self.page_size or not self.options.get("stop_on_short_page", True)
        return self.nth(prev.index + 1) if more else None


class PageNumber(_Numbered):
    def _params(self, index: int) -> dict[str, Any]:
        o = self.options
        return {
            o.get("page_param", "page"): o.get("base_page", 1) + index,
            o.get("size_param", "per_page"): self.page_size,
        }


class Offset(_Numbered):
    def _params(self, index: int) -> dict[str, Any]:
        o = self.options
        return {
            o.get("offset_param", "offset"): index * self.step,
            o.get("limit_param", "limit"): self.page_size,
        }


class _Following(Paginator):
    """Sequential paginators: the next request comes from the previous response."""

    def _params(self, index: int) -> dict[str, Any]:
        return {self.options.get("size_param", "per_page"): self.page_size}


class Cursor(_Following):
    def next(
        self, prev: PageRequest, response: requests.Response, body: Any, count: int
    ) -> PageRequest | None:
        cursor = get_path(body, self.options.get("cursor_path", "next_cursor"), None)
        if cursor in (None, "") or count == 0:
            return None
        if cursor == prev.params.get(self.options.get("cursor_param", "cursor")):
            raise BadResponseError("pagination does not advance: the same cursor came back")
        params = {
            **self._params(prev.index + 1),
            self.options.get("cursor_param", "cursor"): cursor,
        }
        return PageRequest(prev.index + 1, params)


class NextUrl(_Following):
    def _next_url(self, response: requests.Response, body: Any) -> Any:
        return get_path(body, self.options.get("next_url_path", "next"), None)

    def next(
        self, prev: PageRequest, response: requests.Response, body: Any, count: int
    ) -> PageRequest | None:
        url = self._next_url(response, body)
        if not url or not isinstance(url, str) or count == 0:
            return None
        url = urljoin(response.url, url)  # relative links are relative to the page they're on
        if url == response.url:
            raise BadResponseError("pagination does not advance: the next link is this page")
        return PageRequest(prev.index + 1, {}, url)


class LinkHeader(NextUrl):
    def _next_url(self, response: requests.Response, body: Any) -> Any:
        return response.links.get(self.options.get("rel", "next"), {}).get("url")


PAGINATORS: dict[str, type[Paginator]] = {
    "page_number": PageNumber,
    "offset": Offset,
    "cursor": Cursor,
    "next_url": NextUrl,
    "link_header": LinkHeader,
    "single_page": SinglePage,
}


def make_paginator(options: Mapping[str, Any], page_size: int) -> Paginator:
    return PAGINATORS[options.get("type", "page_number")](options, page_size)
