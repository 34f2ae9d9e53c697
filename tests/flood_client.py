"""A hostile client for the flood test, run as its own process:

    python tests/flood_client.py ADDRESS KEY IMAGE_FILE THREADS [RATE]

THREADS threads send MatchImage with one key, ignoring every refusal and retry-after, while
flooding is on: as fast as they can, or RATE calls a second in all (each thread keeps its own
schedule and sends late calls at once, so the flood never falls below RATE while the server keeps up). Commands on stdin, one a line: ``on``, ``off`` (each answered
with ``ok`` once in effect), ``quit`` (answered with one JSON line of outcome counts).
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time

import grpc

from hashmatch.v1 import matcher_pb2, matcher_pb2_grpc


def main() -> int:
    address, key, image_file, threads = sys.argv[1:5]
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    interval = int(threads) / rate if rate > 0 else 0.0
    request = matcher_pb2.MatchImageRequest(image=open(image_file, "rb").read())
    metadata = (("authorization", f"Bearer {key}"),)
    counts: collections.Counter[str] = collections.Counter()
    state = threading.Condition()
    flags = {"on": False, "quit": False, "in_flight": 0}

    def flood() -> None:
        with grpc.insecure_channel(address) as channel:
            match = matcher_pb2_grpc.MatcherServiceStub(channel).MatchImage
            due = 0.0
            while True:
                with state:
                    if not flags["on"]:
                        due = 0.0
                    state.wait_for(lambda: flags["on"] or flags["quit"])
                    if flags["quit"]:
                        return
                    flags["in_flight"] += 1
                if interval:
                    now = time.monotonic()
                    due = max(due + interval, now - 1.0)  # behind by at most a second's worth
                    if due > now:
                        time.sleep(due - now)
                try:
                    match(request, metadata=metadata, timeout=10)
                    outcome = "OK"
                except grpc.RpcError as error:
                    outcome = error.code().name
                with state:
                    counts[outcome] += 1
                    flags["in_flight"] -= 1
                    state.notify_all()

    workers = [threading.Thread(target=flood) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    for command in sys.stdin:
        command = command.strip()
        if command == "quit":
            break
        with state:
            flags["on"] = command == "on"
            state.notify_all()
            if command == "off":  # answered once no call is in flight
                state.wait_for(lambda: flags["in_flight"] == 0)
        print("ok", flush=True)
    with state:
        flags["quit"] = True
        state.notify_all()
    for worker in workers:
        worker.join()
    print(json.dumps(dict(counts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
