"""The grader's channel carries plain data only, and refuses anything else."""

import os
import struct

import numpy as np
import pytest
import torch

from course.sandbox.wire import ChannelClosed, ChannelTimeout, encode, read_frame, write_frame


def roundtrip(message):
    r, w = os.pipe()
    try:
        write_frame(w, message)
        return read_frame(r, deadline=None)
    finally:
        os.close(r)
        os.close(w)


def test_nested_values_arrays_and_tensors():
    msg = {
        "x": [1, 2.5, None, True, "s", float("nan"), float("-inf")],
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "t": torch.tensor([[1.0, -2.0]], dtype=torch.float64),
        "nested": {"deep": (np.int64(3), np.float64(0.5))},
    }
    got = roundtrip(msg)
    assert got["x"][:5] == [1, 2.5, None, True, "s"] and np.isnan(got["x"][5]) and got["x"][6] == float("-inf")
    assert got["a"].dtype == np.float32 and got["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got["t"].dtype == np.float64 and got["t"].tolist() == [[1.0, -2.0]]
    assert got["nested"]["deep"] == [3, 0.5]


@pytest.mark.parametrize("value", [object(), np.array([object()]), {1: "x"}, lambda: 0])
def test_refuses_what_is_not_plain_data(value):
    with pytest.raises(TypeError):
        encode({"v": value})


def test_forged_object_arrays_and_garbage_are_rejected():
    r, w = os.pipe()
    header = b'{"body": {"__array__": 0}, "arrays": [["|O", [1]]]}'
    os.write(w, struct.pack(">I", len(header)) + header + b"\0" * 8)
    with pytest.raises(ChannelClosed):
        read_frame(r)
    os.write(w, struct.pack(">I", 5) + b"nope!")
    with pytest.raises(ChannelClosed):
        read_frame(r)
    os.close(w)
    with pytest.raises(ChannelClosed):
        read_frame(r)
    os.close(r)


def test_a_missing_answer_times_out():
    import time

    r, w = os.pipe()
    os.write(w, b"\0\0")  # half a length prefix, then silence
    with pytest.raises(ChannelTimeout):
        read_frame(r, deadline=time.monotonic() + 0.2)
    os.close(r)
    os.close(w)


def test_an_answer_waiting_since_before_the_deadline_is_read_after_it():
    """A prefetched worker's notebook may have loaded long before the grader reads its reply: that is not a
    time-out (it was, and made the next submission fail every test after a slow one)."""
    import time

    r, w = os.pipe()
    write_frame(w, {"op": "loaded"})
    assert read_frame(r, deadline=time.monotonic() - 5) == {"op": "loaded"}
    with pytest.raises(ChannelTimeout):  # and with nothing waiting, a passed deadline is a time-out at once
        read_frame(r, deadline=time.monotonic() - 5)
    os.close(r)
    os.close(w)
