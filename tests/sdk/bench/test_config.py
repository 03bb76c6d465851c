"""BenchConfig.check: every mistake a user can make says what to do."""
from __future__ import annotations

import pytest

from skugen.bench import BenchConfig
from skugen.errors import InputError


@pytest.mark.parametrize("kw, msg", [
    (dict(bundles=()), "no bundle"),
    (dict(bundles=("x",), backends=("openvino-gpu",)), "unknown backend"),
    (dict(bundles=("x",), precisions=("int4",)), "unknown precision"),
    (dict(bundles=("x",), batches=(0,)), "positive"),
    (dict(bundles=("x",), iters=0), "--iters"),
])
def test_config_errors_say_what_to_do(kw, msg):
    with pytest.raises(InputError, match=msg):
        BenchConfig(**kw).check()
