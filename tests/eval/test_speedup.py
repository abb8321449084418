import math

import pytest

from rewardflow.eval.speedup import first_crossing, format_speedup, training_speedup

STEPS = [0, 100, 200, 300, 400]


def test_linear_curves_exact_ratio():
    # Baseline v = s / 400 ends at 1.0; MIRO v = s / 100 reaches 1.0 at step 100: 4x.
    r = training_speedup(STEPS, [s / 400 for s in STEPS], STEPS, [s / 100 for s in STEPS])
    assert r.target == pytest.approx(1.0)
    assert r.miro_steps == pytest.approx(100)
    assert r.speedup == pytest.approx(4.0)
    assert not r.lower_bound and format_speedup(r) == "4.0x"


def test_interpolation_between_checkpoints():
    # MIRO goes 0.2 -> 0.8 between steps 100 and 200; target 0.5 is crossed half way (150).
    r = training_speedup(STEPS, [0, 0.1, 0.2, 0.3, 0.5], STEPS, [0, 0.2, 0.8, 0.9, 0.9])
    assert r.miro_steps == pytest.approx(150)
    assert r.speedup == pytest.approx(400 / 150)


def test_first_crossing_on_noisy_curve():
    # Crosses 0.5 first between 100 and 200, dips below again, crosses later: the first counts.
    step, first = first_crossing(STEPS, [0.0, 0.4, 0.6, 0.3, 0.7], 0.5)
    assert step == pytest.approx(150) and not first


def test_lower_is_better():
    # Noise level falls; baseline ends at 2.0, MIRO reaches 2.0 between 100 (4.0) and 200 (1.0).
    r = training_speedup(STEPS, [10, 8, 6, 4, 2], STEPS, [10, 4, 1, 1, 1], higher_is_better=False)
    assert r.miro_steps == pytest.approx(100 + 100 * 2 / 3)
    assert r.speedup == pytest.approx(400 / r.miro_steps)
    # The same curves read as higher-is-better, step 0 kept: MIRO starts at 10 >= 2, so it is
    # reached at step 0 (unbounded).
    r2 = training_speedup(
        STEPS, [10, 8, 6, 4, 2], STEPS, [10, 4, 1, 1, 1], higher_is_better=True, ignore_degenerate_start=False
    )
    assert r2.speedup is None and r2.lower_bound and "unbounded" in format_speedup(r2)


def test_degenerate_start_is_ignored():
    # Colourfulness-like: pure noise at step 0 scores 1.0, training drops it to 0.4 and the
    # baseline climbs back to 0.5; MIRO (0.8 at step 100) is past 0.5 at its first real point.
    base, miro = [1.0, 0.4, 0.42, 0.45, 0.5], [1.0, 0.8, 0.9, 0.9, 0.9]
    r = training_speedup(STEPS, base, STEPS, miro)
    assert r.lower_bound and r.speedup == pytest.approx(4.0) and "step 0 ignored" in r.reason
    # MIRO first real point below the target: ordinary interpolation from step 100 on.
    r = training_speedup(STEPS, base, STEPS, [1.0, 0.3, 0.7, 0.9, 0.9])
    assert not r.lower_bound and r.miro_steps == pytest.approx(150) and "step 0 ignored" in r.reason
    # A baseline that starts below its final score keeps step 0 as before.
    assert "ignored" not in training_speedup(STEPS, [0, 0.1, 0.2, 0.3, 0.5], STEPS, [0, 0.2, 0.8, 0.9, 0.9]).reason


def test_never_reached():
    r = training_speedup(STEPS, [0, 0.2, 0.4, 0.6, 0.8], STEPS, [0, 0.1, 0.2, 0.3, 0.4])
    assert r.speedup is None and r.miro_steps is None
    assert r.upper_bound == 1.0 and "never reached" in r.reason
    assert format_speedup(r).startswith("< 1")


def test_reached_at_first_evaluated_point_is_lower_bound():
    r = training_speedup([100, 200, 400], [0.1, 0.2, 0.5], [100, 200, 400], [0.6, 0.7, 0.8])
    assert r.lower_bound and r.speedup == pytest.approx(4.0)
    assert format_speedup(r) == ">= 4.0x"


def test_equal_curves_give_one():
    vals = [0, 0.3, 0.5, 0.6, 0.7]
    r = training_speedup(STEPS, vals, STEPS, vals)
    assert r.speedup == pytest.approx(1.0)


def test_final_window_and_input_errors():
    r = training_speedup(STEPS, [0, 0.1, 0.2, 0.6, 0.4], STEPS, [0, 0.5, 1, 1, 1], final_window=2)
    assert r.target == pytest.approx(0.5) and r.miro_steps == pytest.approx(100)
    with pytest.raises(ValueError, match="increasing"):
        training_speedup([0, 0], [1, 2], STEPS, STEPS)
    with pytest.raises(ValueError, match="values"):
        training_speedup([0, 1], [1], STEPS, STEPS)
    with pytest.raises(ValueError, match="non-finite"):
        training_speedup([0, 1], [1, math.nan], STEPS, STEPS)
