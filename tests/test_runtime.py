"""mae_tutorial.runtime: the timing helper every speed measurement uses."""

import time

import torch

from mae_tutorial import runtime


def test_time_calls_warms_up_then_times_each_call():
    calls = []

    def work():
        calls.append(time.perf_counter())
        time.sleep(0.01)

    times = runtime.time_calls(work, torch.device("cpu"), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3  # two untimed calls, then three timed ones
    assert all(0.01 <= t < 1 for t in times)


def test_time_calls_waits_for_the_gpu_around_every_call(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    runtime.time_calls(lambda: events.append("call"), torch.device("cuda"), repeats=2,
                       warmup=1)
    assert events == ["call", "sync", "call", "sync", "sync", "call", "sync"]


def test_time_calls_can_time_several_calls_between_two_waits(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    times = runtime.time_calls(lambda: events.append("call") or time.sleep(0.01),
                               torch.device("cuda"), repeats=2, warmup=0, calls=3)
    assert events == ["sync", "call", "call", "call", "sync"] * 2
    assert all(0.01 <= t < 0.5 for t in times)  # seconds per call, not per measurement
