"""Latency models: parsing, seeded reproducibility, distributions."""
import numpy as np
import pytest

from ctrader.execution.latency import SampledLatency as LatencyModel, LatencySpecError


def draws(model, n=2000):
    return np.array([model.sample_ns() for _ in range(n)])


def test_constant_forms():
    assert LatencyModel.parse("2").sample_ns() == 2_000_000
    assert LatencyModel.parse("const:0.5").sample_ns() == 500_000
    assert LatencyModel.parse("3ms").sample_ns() == 3_000_000
    assert LatencyModel.parse(1.5).sample_ns() == 1_500_000
    assert LatencyModel.parse("0").is_constant


def test_same_seed_same_draws_and_reset_restarts():
    a = LatencyModel.parse("lognormal:2:0.5", seed=7)
    b = LatencyModel.parse("lognormal:2:0.5", seed=7)
    first = draws(a)
    assert np.array_equal(first, draws(b))
    a.reset()
    assert np.array_equal(first, draws(a))
    assert not np.array_equal(first, draws(LatencyModel.parse("lognormal:2:0.5", seed=8)))


def test_distributions_have_their_shape():
    u = draws(LatencyModel.parse("uniform:1:3", seed=1)) / 1e6
    assert u.min() >= 1 and u.max() <= 3 and 1.8 < u.mean() < 2.2
    ln = draws(LatencyModel.parse("lognormal:2:0.5", seed=1), 20000) / 1e6
    assert 1.9 < np.median(ln) < 2.1 and ln.mean() > np.median(ln)      # heavy right tail
    nm = draws(LatencyModel.parse("normal:1:5", seed=1)) / 1e6
    assert nm.min() >= 0                                                  # clipped, never negative
    assert abs(LatencyModel.parse("lognormal:2:0.5").median_ms() - 2) < 0.1


def test_empirical_resamples_the_file(tmp_path):
    f = tmp_path / "lat.txt"
    f.write_text("1\n2\n5\n")
    d = set(draws(LatencyModel.parse(f"empirical:{f}", seed=3)) / 1e6)
    assert d == {1.0, 2.0, 5.0}


@pytest.mark.parametrize("spec", ["fast", "uniform:3:1", "normal:1", "lognormal:0:1", "-1", "const:-2",
                                  "empirical:/nonexistent/file"])
def test_bad_specs_are_refused(spec):
    with pytest.raises(LatencySpecError):
        LatencyModel.parse(spec)
