"""Recurrent Generation: generate, inspect, regenerate with new seeds until an image is usable.

Per product, rounds of k candidates are generated as one batch and inspected; the first
accepted candidate (Available, or P(Available) over a threshold: the inspector decides) ends
the loop; at most N attempts are made; every attempt is recorded. When none passes, the most
probably Available attempt is returned with the status ``"rejected"``.

The loop knows nothing of diffusion or of ComfyUI: it is given a ``generate(seeds)`` and an
``inspect(images)`` function, so the headless pipeline, ComfyUI's own sampler and a test's
scripted inspector all run the same loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class Cancelled(Exception):
    """Raised between attempts when ``should_stop()`` says so."""


@dataclass
class Attempt:
    index: int  # 0-based, across rounds
    round: int
    seed: int
    label: str
    p_available: float
    accepted: bool
    probs: dict
    seconds: float  # its share of the round's generation and inspection time
    image: Any = None  # what generate() returned for it (a PIL image here)
    info: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"attempt": self.index, "round": self.round, "seed": self.seed, "label": self.label,
                "p_available": round(self.p_available, 6), "accepted": self.accepted,
                "probs": {k: round(v, 6) for k, v in self.probs.items()},
                "seconds": round(self.seconds, 4), **self.info}


@dataclass
class RGResult:
    status: str  # "accepted" or "rejected"
    chosen: Attempt  # the accepted attempt, or the best rejected one
    attempts: list[Attempt]
    seconds: float

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def recurrent_generate(generate: Callable[[list[int]], Sequence[Any]],
                       inspect: Callable[[Sequence[Any]], Sequence[Any]],
                       max_attempts: int = 5, candidates: int = 1, seed: int = 0,
                       on_attempt: Callable[[Attempt, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       stop_on_accept: bool = True) -> RGResult:
    """``generate(seeds)`` returns one image per seed; ``inspect(images)`` returns one verdict
    (``label``, ``p_available``, ``accepted``, ``probs``) per image. Attempt i uses seed
    ``seed + i``, so any attempt can be regenerated alone. ``on_attempt(attempt, max_attempts)``
    is called after each inspection (progress, previews); ``should_stop()`` is checked before
    each round and raises :class:`Cancelled`.

    ``stop_on_accept=False`` measures instead of delivering: every attempt is generated, and the
    result is what the loop would have delivered (the first accepted attempt, else the best).
    Since attempt i's image does not depend on earlier verdicts, the complete lists let Fig. 6
    be computed for any inspector or threshold afterwards (:func:`delivered_at`)."""
    if max_attempts < 1 or candidates < 1:
        raise ValueError("max_attempts and candidates must be at least 1")
    t_start = time.time()
    attempts: list[Attempt] = []
    rnd = 0
    while len(attempts) < max_attempts:
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped after {len(attempts)} of {max_attempts} attempts")
        k = min(candidates, max_attempts - len(attempts))
        seeds = [seed + len(attempts) + j for j in range(k)]
        t0 = time.time()
        images = list(generate(seeds))
        verdicts = list(inspect(images))
        if len(images) != k or len(verdicts) != k:
            raise RuntimeError(f"generate/inspect returned {len(images)}/{len(verdicts)} results for {k} seeds")
        share = (time.time() - t0) / k
        done = None
        for j, (s, im, v) in enumerate(zip(seeds, images, verdicts)):
            a = Attempt(index=len(attempts), round=rnd, seed=s, label=v.label,
                        p_available=float(v.p_available), accepted=bool(v.accepted),
                        probs=dict(getattr(v, "probs", {}) or {}), seconds=share, image=im,
                        info={"note": v.note} if getattr(v, "note", None) else {})
            attempts.append(a)
            if on_attempt is not None:
                on_attempt(a, max_attempts)
            if a.accepted and done is None:
                done = a
        if done is not None and stop_on_accept:
            return RGResult("accepted", done, attempts, time.time() - t_start)
        rnd += 1
    first = next((a for a in attempts if a.accepted), None)
    if first is not None:
        return RGResult("accepted", first, attempts, time.time() - t_start)
    best = max(attempts, key=lambda a: (a.p_available, -a.index))
    return RGResult("rejected", best, attempts, time.time() - t_start)


def delivered_at(attempts: Sequence[Attempt], k: int) -> Attempt:
    """What the loop would have delivered with ``max_attempts = k`` and one candidate a round:
    the first accepted attempt among the first k, else the best of them. (With k candidates a
    round, later candidates of the accepting round are generated too but never chosen first.)"""
    head = list(attempts[:k])
    for a in head:
        if a.accepted:
            return a
    return max(head, key=lambda a: (a.p_available, -a.index))


def rate_curve(runs: Sequence[Sequence[Attempt]], judge: Callable[[Attempt], bool], max_k: int,
               ) -> list[dict]:
    """The paper's Fig. 6 figures from complete attempt lists: for k = 1..max_k, the share of
    products whose delivered image is judged available, and the time per available image
    (time spent on the first min(k, attempts used) attempts / available images), and the
    attempts spent per available image.

    And the inspector's mistakes against ``judge`` (meaningful when it is not the inspector
    itself): ``wasted_rejections`` of ``rejections`` (spent attempts the inspector rejected that
    ``judge`` calls available: each cost a regeneration for nothing) and ``false_accepts`` of
    ``accepts`` (delivered images the inspector accepted that ``judge`` does not)."""
    rows = []
    for k in range(1, max_k + 1):
        ok, secs, used = 0, 0.0, 0
        rejections = wasted = accepts = false_accepts = 0
        for atts in runs:
            if not atts:
                continue
            d = delivered_at(atts, k)
            spent = atts[:d.index + 1 if d.accepted else k]
            secs += sum(a.seconds for a in spent)
            used += len(spent)
            good = bool(judge(d))
            ok += good
            rejected = [a for a in spent if not a.accepted]
            rejections += len(rejected)
            wasted += sum(bool(judge(a)) for a in rejected)
            if d.accepted:
                accepts += 1
                false_accepts += not good
        n = sum(1 for a in runs if a)
        # attempts, unlike seconds, do not depend on what else the machine was doing
        rows.append({"k": k, "available_rate": ok / max(1, n), "available": ok, "products": n,
                     "seconds_per_available": secs / ok if ok else float("inf"),
                     "attempts_per_available": used / ok if ok else float("inf"),
                     "rejections": rejections, "wasted_rejections": wasted,
                     "accepts": accepts, "false_accepts": false_accepts})
    return rows
