"""Telling a storage outage from a missing file, whichever backend stores the files.

On the filesystem a missing file is FileNotFoundError and there is no outage to speak of. An
S3-compatible store that cannot be reached, or answers with an error (credentials refused, a
server error), raises botocore's exceptions, which are not OSErrors: callers that must answer
"try again later" (an upload's 503, a prediction sent back to the queue) catch these. A missing
object is still FileNotFoundError (django-storages turns the 404 into one).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

STORAGE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

UPLOAD_UNAVAILABLE = "The file store cannot be reached, so nothing was stored: try the upload again in a few minutes."
READ_UNAVAILABLE = "The file store could not be reached; the image stays queued and is tried again."


class StorageUnavailable(Exception):
    """The file store did not answer; what needed it can be tried again later."""
