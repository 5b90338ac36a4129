"""``[[redis]]``: a Redis server and the job queues it holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from . import urls
from .base import InlineLevels, NumberLimit, Target, unique

QUEUE_LAYOUTS = ("key", "bullmq", "sidekiq", "celery", "rq")


class RedisQueue(NumberLimit):
    """A job queue held in Redis, with its levels (default ``redis.queue_depth``).

    Exactly one of: ``key`` (a list, sorted set or stream: its length) or the queue's name in a
    job-queue library's layout (``bullmq``, ``sidekiq``, ``celery``, ``rq``).
    """

    key: str | None = Field(default=None, min_length=1)
    bullmq: str | None = Field(default=None, min_length=1)
    sidekiq: str | None = Field(default=None, min_length=1)
    celery: str | None = Field(default=None, min_length=1)
    rq: str | None = Field(default=None, min_length=1)
    prefix: str = Field(default="bull", min_length=1)  # BullMQ's `prefix` option

    @model_validator(mode="after")
    def _one_layout(self) -> RedisQueue:
        given = [layout for layout in QUEUE_LAYOUTS if getattr(self, layout) is not None]
        if len(given) != 1:
            raise ValueError(
                f"expected exactly one of {', '.join(QUEUE_LAYOUTS)}, got "
                f"{', '.join(given) or 'none'}"
            )
        if "prefix" in self.model_fields_set and given[0] != "bullmq":
            raise ValueError("prefix applies to bullmq queues only")
        return self

    @property
    def layout(self) -> str:
        return next(layout for layout in QUEUE_LAYOUTS if getattr(self, layout) is not None)

    @property
    def name(self) -> str:
        """How the queue is named in test ids and messages: the key, or ``bullmq:<queue>``."""
        value = str(getattr(self, self.layout))
        return value if self.layout == "key" else f"{self.layout}:{value}"


class RedisTarget(Target):
    url: str = "redis://127.0.0.1:6379/0"  # rediss:// for TLS, unix:// for a socket
    username: str | None = Field(default=None, min_length=1)
    password_env: str | None = None
    # A queue's name is its test id (`cache/emails`): the same queue twice would be two tests.
    queues: Annotated[
        list[RedisQueue], unique("queue", "its name is the test id", key=lambda q: q.name)
    ] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        expected = "a redis://, rediss:// or unix:// URL"
        if re.search(r"[?&]password=", url):
            raise ValueError(
                "expected a URL without a password (name the variable that holds it in "
                "password_env)"
            )
        if url.startswith("unix://"):
            if not url.removeprefix("unix://").startswith("/"):
                raise ValueError(
                    f"expected a socket path such as 'unix:///run/redis.sock', got {url!r}"
                )
            return url
        # A user alone is an ACL user (as `username` is); the password must not be in the URL.
        urls.checked(url, ("redis", "rediss"), expected, credentials="")
        return url

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, queue in enumerate(self.queues):
            yield InlineLevels("redis.queue_depth", ("queues", index), queue)
