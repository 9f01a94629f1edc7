"""The speed/accuracy Pareto front, one definition for the selector, `rtseg bench` and `rtseg models`."""

from __future__ import annotations


def pareto_indices(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (fps, accuracy) points that no other point beats on both, fastest first.

    Walking from the fastest down, a point joins the front only if it is more accurate than every faster
    one: each step of the front trades speed for accuracy.
    """
    front: list[int] = []
    for i in sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1])):
        if not front or points[i][1] > points[front[-1]][1]:
            front.append(i)
    return front
