"""moto_server with its DynamoDB backend serialised: the test harness's moto.

Usage (what shared/testkit/src/moto.rs runs):

    target/venv/bin/python infra/moto_serial.py -H 127.0.0.1 -p PORT

Why: moto_server answers requests on threads, and moto 5.2's DynamoDB backend
is not thread-safe. TransactWriteItems copies the tables to roll back, so a
transaction racing another request fails with HTTP 500 ("dictionary changed
size during iteration") and, now and then, a racing write is lost. Real
DynamoDB serialises conflicting writes itself, so we serialise the emulator:
every public method of the DynamoDB backend runs under one re-entrant lock.
SQS is left concurrent, so a long poll never holds up a table write. Under
that lock, a cancelled transaction is rolled back item by item instead of by
copying whole tables (see _NoTableCopies).

`GET /moto-api/data.json` (where tests read the mail SES "sent") walks every
model instance moto tracks; a request changing one of them mid-walk fails it
with the same RuntimeError and an HTTP 500. It runs under the same lock, and
is read again if another service changed a model under it.
"""

import copy
import functools
import inspect
import sys
import threading
import time

import moto.dynamodb.models as _dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
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


class _NoTableCopies:
    """moto's `copy` as transact_write_items sees it: a table is not copied.

    moto 5.2.5 deep-copies every table a transaction touches, to roll back a
    cancelled one, so each transaction costs the size of the table and a day
    of messages costs its square (a 550-message day on moto took over ten
    minutes and 18 GB). Under the lock above nothing else runs during a
    transaction, so _transact_write_items below saves and restores only the
    items it touches instead, which is what a rollback needs.
    """

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, *args, **kwargs):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, *args, **kwargs)


_dynamodb_models.copy = _NoTableCopies()
_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(backend, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs.get(table.range_key_attr)
        return key
    return op.get("Key")


@functools.wraps(_transact_write_items)
def _transact_write_items_by_item(self, transact_items):
    saved = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        _, op = next(iter(entry.items()))
        key = _key_of(self, op)
        if key is None:
            continue
        try:
            item = self.get_item(op["TableName"], key)
        except Exception:  # a malformed key: moto's own checks answer it
            continue
        before = None if item is None else copy.deepcopy(item.to_json()["Attributes"])
        saved.append((op["TableName"], key, before))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, before in reversed(saved):
            if before is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before)
        raise


DynamoDBBackend.transact_write_items = _transact_write_items_by_item

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
