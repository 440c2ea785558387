import math

import numpy as np
import pytest

from margin_design.errors import InputError
from margin_design.reports.vol_points import parse_vol_points


def test_range_includes_both_ends_exactly():
    p = parse_vol_points("8:60:1")
    assert p.labels()[0] == "8" and p.labels()[-1] == "60" and len(p.labels()) == 53
    assert np.allclose(p.daily * math.sqrt(252) * 100, np.arange(8, 61))


def test_decimal_step_has_no_float_drift():
    p = parse_vol_points("8:9:0.1")
    assert len(p.annual_pct) == 11 and p.labels()[-1] == "9"


def test_list():
    p = parse_vol_points("10, 15,20,30")
    assert p.labels() == ["10", "15", "20", "30"]
    assert p.daily[0] == pytest.approx(0.10 / math.sqrt(252))


@pytest.mark.parametrize("spec", ["", "8:60", "8:60:0", "60:8:1", "a:b:c", "10,10", "20,10", "0:10:1", "-5,10",
                                  "8:60:0.0001", "900", "nan", "inf,1000"])
def test_refused_with_one_sentence(spec):
    with pytest.raises(InputError) as e:
        parse_vol_points(spec)
    assert "\n" not in str(e.value)
