"""moto_server with its DynamoDB backend serialised: the test harness's moto.

Usage (what shared/testkit/src/moto.rs runs):

    target/venv/bin/python infra/moto_serial.py -H 127.0.0.1 -p PORT

Why: moto_server answers requests on threads, and moto 5.2's DynamoDB backend
is not thread-safe. TransactWriteItems copies the tables to roll back, so a
transaction racing another request fails with HTTP 500 ("dictionary changed
size during iteration") and, now and then, a racing write is lost. Real
DynamoDB serialises conflicting writes itself, so we serialise the emulator:
every public method of the DynamoDB backend runs under one re-entrant lock.
SQS is left concurrent, so a long poll never holds up a table write.

`GET /moto-api/data.json` (where tests read the mail SES "sent") walks every
model instance moto tracks; a request changing one of them mid-walk fails it
with the same RuntimeError and an HTTP 500. It runs under the same lock, and
is read again if another service changed a model under it.
"""

import functools
import inspect
import sys
import threading
import time

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_api._internal import urls as _api_urls
from moto.moto_api._internal.responses import MotoAPIResponse
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name, _member in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialised(_member))

_model_data = MotoAPIResponse.model_data


@functools.wraps(_model_data)
def _model_data_whole(self, *args, **kwargs):
    for _ in range(50):
        try:
            with _LOCK:
                return _model_data(self, *args, **kwargs)
        except RuntimeError:  # a model changed mid-walk: read it again
            time.sleep(0.02)
    with _LOCK:
        return _model_data(self, *args, **kwargs)


MotoAPIResponse.model_data = _model_data_whole
# The URL map bound the method when it was imported.
_api_urls.url_paths["{0}/moto-api/data.json"] = _api_urls.response_instance.model_data

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
