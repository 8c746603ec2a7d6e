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
"""

import functools
import inspect
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
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

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
