"""skugen.export.tolerances: the INT8 golden rule and the worst-of-two statistics both exporters use."""
from __future__ import annotations

from skugen.export.tolerances import int8_golden_tolerance, worse_stats


def test_int8_tolerance_is_a_psnr_floor_and_a_mean_error_bound():
    t = int8_golden_tolerance({"psnr_db": 41.0, "mean_abs": 0.004}, span=2.0)
    assert t["min_psnr_db"] == 30.0 and t["max_mean_abs"] == 0.04        # capped at 30 dB; 2% of the span wins
    t = int8_golden_tolerance({"psnr_db": 29.0, "mean_abs": 0.1}, span=2.0)
    assert t["min_psnr_db"] == 23.0 and t["max_mean_abs"] == 0.3          # measured - 6 dB; 3x the measured mean
    assert int8_golden_tolerance({"psnr_db": None, "mean_abs": 0.0}, span=1.0)["min_psnr_db"] == 30.0


def test_worse_stats_takes_the_lower_psnr_and_the_higher_error():
    assert worse_stats({"psnr_db": 35.0, "mean_abs": 0.01}, {"psnr_db": 31.0, "mean_abs": 0.005}) == \
        {"psnr_db": 31.0, "mean_abs": 0.01}
    assert worse_stats({"psnr_db": None, "mean_abs": 0.0}, {"psnr_db": None, "mean_abs": 0.0})["psnr_db"] is None
