"""Each server process hashes at most `hashing_slots` images at once (server/hashing_slots.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from imagegen import encode, photo

from hashmatch.server.__main__ import parse_args
from hashmatch.server.hashing_slots import HashingSlots, cores_available, default_slots
from hashmatch.v1 import matcher_pb2, matcher_pb2_grpc


def test_slots_bound_how_many_hold_at_once() -> None:
    slots = HashingSlots(2)
    inside = 0
    most = 0
    lock = threading.Lock()

    def hold() -> None:
        nonlocal inside, most
        with slots.held():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.03)
            with lock:
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: hold(), range(16)))
    assert most == 2
    with pytest.raises(ValueError, match="at least 1"):
        HashingSlots(0)


def test_default_is_one_image_per_core_a_worker_has_to_itself() -> None:
    cores = cores_available()
    assert default_slots(1) == cores
    assert default_slots(2) == max(1, cores // 2)
    assert default_slots(cores * 4) == 1
    assert parse_args(["--workers", "2", "--hashing-slots", "3"]).hashing_slots == 3
    assert parse_args([]).hashing_slots == 0  # automatic
    with pytest.raises(SystemExit):
        parse_args(["--hashing-slots", "-1"])


def test_requests_beyond_the_slots_wait_and_all_answer_the_same(server_factory) -> None:
    """One slot, eight uploads at once over a real channel: every one answered, identically."""
    server = server_factory(hashing_slots=1)
    image = encode(photo(31, (1600, 1200)), "JPEG", quality=90)
    with grpc.insecure_channel(server.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(
                lambda _: matcher.HashImage(matcher_pb2.HashImageRequest(image=image), timeout=60), range(8)))
    assert len({r.SerializeToString() for r in replies}) == 1
    assert len(replies[0].hashes) == 4


def test_waiters_get_the_slot_in_the_order_they_came() -> None:
    slots = HashingSlots(1)
    order: list[int] = []
    holder = threading.Event()
    release = threading.Event()

    def first() -> None:
        with slots.held():
            holder.set()
            release.wait(10)

    def waiter(k: int) -> None:
        with slots.held():
            order.append(k)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holder.wait(10)
    for k in range(6):
        threads.append(threading.Thread(target=waiter, args=(k,)))
        threads[-1].start()
        time.sleep(0.02)  # each queues before the next
    release.set()
    for t in threads:
        t.join(10)
    assert order == list(range(6))


def test_a_request_waiting_for_a_slot_still_ends_at_its_deadline(server_factory) -> None:
    """Server side: the waiting request leaves the queue when its deadline passes, unhashed."""
    server = server_factory(hashing_slots=1)
    slots = server.server.hashing_slots
    slow = encode(photo(32, (4000, 3000)), "PNG")  # hashing it keeps the one slot busy a while
    quick = encode(photo(33, (64, 64)), "PNG")
    with grpc.insecure_channel(server.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        # The deadline is set from this machine's own time for one slow upload: six of them
        # ahead queue the quick one ~6 of those, four times its deadline.
        began = time.monotonic()
        matcher.MatchImage(matcher_pb2.MatchImageRequest(image=slow), timeout=60)
        one = time.monotonic() - began
        with ThreadPoolExecutor(6) as pool:
            busy = [pool.submit(matcher.MatchImage, matcher_pb2.MatchImageRequest(image=slow), timeout=60)
                    for _ in range(6)]
            time.sleep(min(0.2, one / 2))
            with pytest.raises(grpc.RpcError) as err:
                matcher.HashImage(matcher_pb2.HashImageRequest(image=quick), timeout=1.5 * one)
            assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            # The server gave up on it too: it left the queue (in order, behind the slow ones)
            # without being hashed, while the slow uploads were still being hashed.
            end = time.monotonic() + 5
            while slots.gave_up["DEADLINE_PASSED"] == 0 and time.monotonic() < end:
                time.sleep(0.02)
            assert slots.gave_up == {"DEADLINE_PASSED": 1}
            assert not all(f.done() for f in busy)
            assert all(f.result().image.width == 4000 for f in busy)
        # Once the slot is free again a quick upload is answered at once.
        assert matcher.HashImage(matcher_pb2.HashImageRequest(image=quick), timeout=10).image.width == 64
        assert slots.gave_up == {"DEADLINE_PASSED": 1}


def test_a_request_whose_client_cancels_while_waiting_leaves_the_queue(server_factory) -> None:
    server = server_factory(hashing_slots=1)
    slots = server.server.hashing_slots
    slow = encode(photo(34, (4000, 3000)), "PNG")
    quick = encode(photo(35, (64, 64)), "PNG")
    with grpc.insecure_channel(server.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        with ThreadPoolExecutor(6) as pool:
            busy = [pool.submit(matcher.MatchImage, matcher_pb2.MatchImageRequest(image=slow), timeout=60)
                    for _ in range(6)]
            time.sleep(0.2)
            call = matcher.HashImage.future(matcher_pb2.HashImageRequest(image=quick), timeout=60)
            time.sleep(0.2)
            assert call.cancel()
            end = time.monotonic() + 5
            while slots.gave_up["CLIENT_GONE"] == 0 and time.monotonic() < end:
                time.sleep(0.02)
            assert slots.gave_up == {"CLIENT_GONE": 1}
            assert all(f.result().image.width == 4000 for f in busy)
