"""Server-Sent Events of a job: decoding the text/event-stream lines and applying them to the job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]


@dataclass(frozen=True)
class Event:
    """One event: `job` (the document), `progress`, `step` (a result), `end` (the final job), `gone`."""

    name: str
    data: Document


class EventDecoder:
    """Feed it the stream's lines; it returns an Event at each blank line that ends one."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """One line of the stream (without its line break)."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self._name = value
        elif key == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        name, data = self._name, "\n".join(self._data)
        self._name, self._data = "message", []
        if not data:
            return None
        return Event(name, json.loads(data))


def apply(job: Document, event: Event) -> Document:
    """The job document after an event (a new dict; the old one is left as it was)."""
    if event.name in ("job", "end"):
        return event.data
    if event.name == "progress":
        return {**job, **event.data}
    if event.name == "step":
        steps = [event.data if step["index"] == event.data["index"] else step for step in job["steps"]]
        return {**job, "steps": steps}
    return job
