import numpy as np
import pytest

from newsml_pipeline.core.labeling.label_model import DawidSkene, labels_from_proba, majority_vote
from newsml_pipeline.core.labeling.schema import ABSTAIN


def synthetic_votes(n: int, k: int, accs: list[float], coverage: list[float], seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    votes = np.full((n, len(accs)), ABSTAIN)
    for j, (a, c) in enumerate(zip(accs, coverage, strict=True)):
        vote = rng.random(n) < c
        correct = rng.random(n) < a
        wrong = (y + rng.integers(1, k, size=n)) % k  # uniformly one of the other classes
        votes[:, j] = np.where(vote, np.where(correct, y, wrong), ABSTAIN)
    return y, votes


def test_dawid_skene_recovers_known_function_accuracies():
    accs = [0.92, 0.75, 0.6, 0.45]
    y, votes = synthetic_votes(6000, 4, accs, coverage=[0.6, 0.9, 0.8, 0.7])
    model = DawidSkene(k=4).fit(votes)
    est = model.function_accuracies()
    np.testing.assert_allclose(est, accs, atol=0.03)
    labels, _ = labels_from_proba(model.predict_proba(votes), min_confidence=0.0)
    mv, _ = majority_vote(votes, k=4)
    assert (labels == y).mean() > (mv == y).mean() + 0.02


def test_rows_without_votes_abstain_below_min_confidence():
    _, votes = synthetic_votes(500, 5, [0.9, 0.8], coverage=[0.7, 0.7], seed=1)
    votes[:10] = ABSTAIN
    proba = DawidSkene(k=5).fit(votes).predict_proba(votes)
    labels, conf = labels_from_proba(proba, min_confidence=0.5)
    assert (labels[:10] == ABSTAIN).all()
    assert (conf[:10] < 0.5).all()
    assert (labels[10:] != ABSTAIN).mean() > 0.8


def test_majority_vote_ties_and_empty_rows_abstain():
    votes = np.array([[0, 1, ABSTAIN], [2, 2, 1], [ABSTAIN, ABSTAIN, ABSTAIN]])
    labels, conf = majority_vote(votes, k=3)
    assert labels.tolist() == [ABSTAIN, 2, ABSTAIN]
    assert conf[1] == pytest.approx(2 / 3)


def test_invalid_votes_are_rejected_with_the_range():
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        DawidSkene(k=3).fit(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="2-D"):
        majority_vote(np.array([0, 1]), k=3)
