"""ListsService.ExportHashes: the one RPC that returns listed hash values (curate role, audited).

A subclass of the Lists servicer so it can be added without touching lists.py; it reads entries
through the store's ``iter_entries`` (the Store protocol) and sends them in batches.
"""

from __future__ import annotations

import logging

import grpc

from hashmatch.hashing import Hash
from hashmatch.v1 import lists_pb2

from . import convert
from .auth import current_actor
from .errors import streaming
from .lists import ListsServicer

audit_log = logging.getLogger("hashmatch.audit")
BATCH = 1000


class ExportingListsServicer(ListsServicer):
    @streaming
    def ExportHashes(self, request: lists_pb2.ExportHashesRequest, context: grpc.ServicerContext):
        info = self._lists.get_list(request.list_name)  # ListNotFound -> NOT_FOUND
        sent = 0
        batch: list[lists_pb2.HashEntry] = []
        for entry in self._lists.store.iter_entries():
            if entry.list_id != info.list_id:
                continue
            batch.append(lists_pb2.HashEntry(
                algorithm=convert.algorithm_to_proto(entry.algorithm),
                hash=Hash(entry.algorithm, entry.value).hex,
                label=entry.label,
                id=entry.entry_id,
            ))
            if len(batch) == BATCH:
                yield lists_pb2.ExportHashesResponse(entries=batch)
                sent, batch = sent + len(batch), []
        if batch or not sent:
            yield lists_pb2.ExportHashesResponse(entries=batch)
            sent += len(batch)
        audit_log.info("list %s exported (%d entries) by %s", info.name, sent, current_actor())
