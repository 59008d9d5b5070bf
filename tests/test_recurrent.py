"""Recurrent Generation with a scripted inspector: stopping, limits, seeds, the Fig. 6 curve."""
from dataclasses import dataclass

import pytest

from rfft.recurrent import Cancelled, delivered_at, rate_curve, recurrent_generate


@dataclass
class V:
    label: str
    p_available: float
    accepted: bool
    probs: dict


class Script:
    """Verdicts by seed: seeds in ``ok`` are accepted; p_available grows with the seed."""

    def __init__(self, ok=()):
        self.ok = set(ok)
        self.generated: list[list[int]] = []

    def generate(self, seeds):
        self.generated.append(list(seeds))
        return [f"img{s}" for s in seeds]

    def inspect(self, images):
        out = []
        for im in images:
            s = int(im[3:])
            acc = s in self.ok
            out.append(V("Available" if acc else "Space Mismatch", 0.9 if acc else s / 1000, acc, {}))
        return out


def test_stops_at_first_acceptance():
    sc = Script(ok={102})
    r = recurrent_generate(sc.generate, sc.inspect, max_attempts=10, candidates=1, seed=100)
    assert r.status == "accepted" and r.chosen.seed == 102 and r.chosen.index == 2
    assert sc.generated == [[100], [101], [102]]
    assert [a.seed for a in r.attempts] == [100, 101, 102]


def test_rounds_of_k_and_first_accepted_in_the_round():
    sc = Script(ok={13, 12})
    r = recurrent_generate(sc.generate, sc.inspect, max_attempts=10, candidates=3, seed=10)
    assert sc.generated == [[10, 11, 12]]  # the round that accepted is the last
    assert r.chosen.seed == 12 and len(r.attempts) == 3 and r.chosen.round == 0


def test_attempt_limit_and_best_of_rejected():
    sc = Script(ok=set())
    r = recurrent_generate(sc.generate, sc.inspect, max_attempts=5, candidates=2, seed=0)
    assert sc.generated == [[0, 1], [2, 3], [4]]  # the last round is cut to the limit
    assert r.status == "rejected" and len(r.attempts) == 5
    assert r.chosen.seed == 4  # highest P(Available)


def test_measuring_mode_generates_every_attempt_and_delivers_the_same_image():
    for ok, cands in [({102, 104}, 1), ({102, 104}, 2), (set(), 1)]:
        deliver = recurrent_generate(Script(ok).generate, Script(ok).inspect, 5, cands, seed=100)
        sc = Script(ok)
        measure = recurrent_generate(sc.generate, sc.inspect, 5, cands, seed=100, stop_on_accept=False)
        assert [a.seed for a in measure.attempts] == [100, 101, 102, 103, 104]  # none skipped
        assert sum(len(g) for g in sc.generated) == 5
        assert (measure.status, measure.chosen.seed) == (deliver.status, deliver.chosen.seed)
        # and the complete list answers for every shorter budget as the loop would have
        for k in range(1, 6):
            short = recurrent_generate(Script(ok).generate, Script(ok).inspect, k, 1, seed=100)
            assert delivered_at(measure.attempts, k).seed == short.chosen.seed


def test_cancel_between_rounds():
    sc = Script()
    calls = iter([False, False, True])
    with pytest.raises(Cancelled, match="2 of 6"):
        recurrent_generate(sc.generate, sc.inspect, max_attempts=6, candidates=1, should_stop=lambda: next(calls))
    assert len(sc.generated) == 2


def test_rate_curve_by_hand():
    # product A: accepted at attempt 3 (index 2); B: never; C: accepted at once.
    A = recurrent_generate(Script({2}).generate, Script({2}).inspect, 4, 1, 0).attempts
    B = recurrent_generate(Script().generate, Script().inspect, 4, 1, 0).attempts
    C = recurrent_generate(Script({0}).generate, Script({0}).inspect, 4, 1, 0).attempts
    for atts in (A, B, C):
        for a in atts:
            a.seconds = 1.0
    truth = lambda a: a.accepted  # noqa: E731
    rows = rate_curve([A, B, C], truth, 4)
    assert [r["available"] for r in rows] == [1, 1, 2, 2]
    # k=1: A 1 s + B 1 s + C 1 s for 1 available; k=3: A 3 + B 3 + C 1 = 7 s for 2
    assert rows[0]["seconds_per_available"] == 3.0 and rows[2]["seconds_per_available"] == 3.5
    assert delivered_at(A, 2).index == 1  # best of the first two (higher P with a later seed)


def test_rate_curve_counts_the_inspectors_mistakes_by_hand():
    # The inspector accepts A at index 2 and C at index 0, never B; the judge calls the odd
    # attempts available, so the inspector is wrong in both directions.
    A = recurrent_generate(Script({2}).generate, Script({2}).inspect, 4, 1, 0).attempts
    B = recurrent_generate(Script().generate, Script().inspect, 4, 1, 0).attempts
    C = recurrent_generate(Script({0}).generate, Script({0}).inspect, 4, 1, 0).attempts
    rows = rate_curve([A, B, C], lambda a: a.index % 2 == 1, 4)
    # k=1: spent A0 (rejected), B0 (rejected), C0 (accepted, judged unavailable)
    assert (rows[0]["rejections"], rows[0]["wasted_rejections"]) == (2, 0)
    assert (rows[0]["accepts"], rows[0]["false_accepts"]) == (1, 1)
    # k=3: rejected A0 A1 B0 B1 B2, of which A1 and B1 available; A2 and C0 accepted, both not
    assert (rows[2]["rejections"], rows[2]["wasted_rejections"]) == (5, 2)
    assert (rows[2]["accepts"], rows[2]["false_accepts"]) == (2, 2)
    # k=4: B3 is rejected too, and available
    assert (rows[3]["rejections"], rows[3]["wasted_rejections"]) == (6, 3)
