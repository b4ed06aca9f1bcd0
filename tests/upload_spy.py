"""An upload handler that records each request whose multipart body Django began to parse (and so, with its
default handlers, to spool to a temporary file): the upload tests prove a refused request never gets here."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import MemoryFileUploadHandler

PARSED: list[str] = []


class RecordingUploadHandler(MemoryFileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        PARSED.append(request.path if request is not None else "")
