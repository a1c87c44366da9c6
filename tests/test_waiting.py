"""Waiting on a descriptor numbered past select()'s 1023 limit (a long-lived process holding many
sockets reaches it: the layer holder and the setup network's helper once failed there)."""

import os
import resource
import select

import pytest

from bot.common.waiting import readable

HIGH_FD = 1500


@pytest.fixture
def high_pipe():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.skip(f"RLIMIT_NOFILE's hard limit {hard} is below {HIGH_FD}")
    if soft != resource.RLIM_INFINITY and soft <= HIGH_FD:
        resource.setrlimit(resource.RLIMIT_NOFILE, (HIGH_FD + 1, hard))
    r, w = os.pipe()
    os.dup2(r, HIGH_FD)
    os.close(r)
    yield HIGH_FD, w
    os.close(HIGH_FD)
    os.close(w)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_descriptor_past_1023_is_waited_on(high_pipe):
    fd, w = high_pipe
    with pytest.raises(ValueError):  # what the old select()-based wait met
        select.select([fd], [], [], 0)
    assert readable(fd, 0.05) is False
    os.write(w, b"x")
    assert readable(fd, 1.0) is True


def test_eof_counts_as_readable(high_pipe):
    fd, w = high_pipe
    os.close(os.dup(w))
    r2, w2 = os.pipe()
    os.close(w2)
    assert readable(r2, 1.0) is True  # the writer is gone: a read returns b"" at once
    os.close(r2)
