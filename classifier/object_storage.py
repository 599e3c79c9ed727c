"""Telling a storage outage from a missing file, whichever backend stores the files.

On the filesystem a missing file is FileNotFoundError and there is no outage to speak of. An
S3-compatible store that cannot be reached, or answers with an error (credentials refused, a
server error), raises botocore's exceptions, which are not OSErrors: callers that must answer
"try again later" (an upload's 503, a prediction sent back to the queue) catch these. A missing
object is still FileNotFoundError (django-storages turns the 404 into one).
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

STORAGE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

UPLOAD_UNAVAILABLE = "The file store cannot be reached, so nothing was stored: try the upload again in a few minutes."
READ_UNAVAILABLE = "The file store could not be reached; the image stays queued and is tried again."


SERVE_UNAVAILABLE = "The file store cannot be reached just now: try again in a few minutes."
RETRY_AFTER_SECONDS = 30


class StorageOutageMiddleware:
    """A view that needed the store while it was unreachable answers 503 with a reason, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, STORAGE_ERRORS):
            return None
        from django.http import HttpResponse, JsonResponse

        logger.error("%s %s: the file store is unavailable: %s", request.method, request.path, exception)
        wants_json = request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")
        response = (
            JsonResponse({"detail": SERVE_UNAVAILABLE, "code": "storage_unavailable"}, status=503)
            if wants_json
            else HttpResponse(SERVE_UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8")
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
