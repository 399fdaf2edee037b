"""Token bucket with one second of burst; sustained double rate counts as flooding."""

from frontends.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_of_one_second_then_refusals():
    clock = Clock()
    limiter = RateLimiter(10, clock)
    assert all(limiter.allow() for _ in range(10))
    assert not limiter.allow()
    clock.now += 0.1
    assert limiter.allow()
    assert not limiter.allow()


def test_steady_allowed_rate_is_never_refused():
    clock = Clock()
    limiter = RateLimiter(10, clock)
    for _ in range(100):
        clock.now += 0.1
        assert limiter.allow()
    assert not limiter.flooding()


def test_flooding_after_more_refusals_than_a_second_allows():
    clock = Clock()
    limiter = RateLimiter(5, clock)
    results = [limiter.allow() for _ in range(5 + 5)]
    assert results.count(False) == 5 and not limiter.flooding()
    limiter.allow()
    assert limiter.flooding()
    clock.now += 2
    assert not limiter.flooding()
