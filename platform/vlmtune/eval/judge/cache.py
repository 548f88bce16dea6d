"""The judge's reply cache: append-only JSON lines in the job's output, keyed by (request, judge).

A reply is durable as soon as it is received: on a local folder each line is written, flushed and fsynced at once,
so a killed job loses at most the requests in flight; on object storage (no appends) replies go out in part files,
one per flush. Reading skips a line cut short by a kill (and counts it), so a rerun pays only for what is missing.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from vlmtune import storage
from vlmtune.eval.judge.requests import JudgeRequest, Reply
from vlmtune.spec.layout import RunLayout

LOCAL_FILE, PART_PREFIX = "replies.jsonl", "replies-"


class ReplyCache:
    """Replies by request key, loaded from `folder_uri` and appended to as replies arrive (thread-safe)."""

    def __init__(self, folder_uri: str):
        self.folder_uri = folder_uri
        self.local = storage.local_path(folder_uri)
        self.replies: dict[str, Reply] = {}
        self.damaged_lines = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._session = uuid.uuid4().hex[:12]
        self._parts = 0
        self._load()

    def _load(self) -> None:
        names = [
            name
            for name in storage.list_dir(self.folder_uri)
            if name == LOCAL_FILE or (name.startswith(PART_PREFIX) and name.endswith(".jsonl"))
        ]
        for name in names:
            data = storage.read_bytes(storage.join(self.folder_uri, name))
            for line in data.decode("utf-8", errors="replace").splitlines():
                self._load_line(line)

    def _load_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            record = json.loads(line)
            key, reply = record["key"], Reply(record["reply"], record.get("model", ""))
        except (ValueError, KeyError, TypeError):
            self.damaged_lines += 1  # a line cut short by a kill: its request is simply asked again
            return
        if isinstance(key, str) and isinstance(reply.text, str):
            self.replies.setdefault(key, reply)
        else:
            self.damaged_lines += 1

    def get(self, key: str) -> Reply | None:
        return self.replies.get(key)

    def put(self, key: str, judge: str, request: JudgeRequest, reply: Reply) -> None:
        """Keep `reply`; on a local folder it is on disk when this returns."""
        record = {
            "key": key,
            "judge": judge,
            "request": request.__dict__,
            "reply": reply.text,
            "model": reply.model,
            "receivedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.replies.setdefault(key, reply)
            if self.local is not None:
                self._append_local(line)
            else:
                self._pending.append(line)

    def _append_local(self, line: str) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        with open(self.local / LOCAL_FILE, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def flush(self) -> None:
        """Object storage: write the replies received since the last flush as one new part file."""
        with self._lock:
            if not self._pending:
                return
            lines, self._pending = self._pending, []
            self._parts += 1
            name = f"{PART_PREFIX}{self._session}-{self._parts:06d}.jsonl"
        storage.write_bytes(storage.join(self.folder_uri, name), "".join(lines).encode("utf-8"))


def cache_for(output_uri: str) -> ReplyCache:
    return ReplyCache(RunLayout(output_uri).judge_cache)


def local_file(cache: ReplyCache) -> Path | None:
    """The file a local cache appends to (None on object storage)."""
    return None if cache.local is None else cache.local / LOCAL_FILE
