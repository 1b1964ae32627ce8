"""TrainConfig validation: every bad value is a ValueError naming the field."""
import numpy as np
import pytest

import mascot
from mascot import _core


@pytest.mark.parametrize("kw,field", [
    ({"k": 0}, "k"), ({"k": -3}, "k"), ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"),
    ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"decay": -0.1}, "decay"),
    ({"lambda_p": -1.0}, "lambda_p"), ({"lambda_q": float("inf")}, "lambda_q"),
    ({"init_std": 0.0}, "init_std"), ({"groups": 0}, "user_groups"), ({"item_groups": 0}, "item_groups"),
    ({"method": "fp8"}, "method"), ({"order": "sorted"}, "order"), ({"rounding": "up"}, "rounding"),
    ({"device": "tpu"}, "device"), ({"threads": -1}, "threads"), ({"k": 2.5}, "k"),
])
def test_bad_parameters_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        mascot.MF(**kw)


def test_groups_more_than_users(tiny):
    u, i, r, nu, ni = tiny
    # g-switching needs its groups; the error names the Python parameters
    with pytest.raises(ValueError, match=r"user_groups must be <= the number of users .*user_groups="):
        mascot.MF(k=8, epochs=1, method="mascot", groups=nu + 1, item_groups=2).fit((u, i, r))
    # a method that never looks at groups lays rows out in min(groups, rows) of them
    m = mascot.MF(k=8, epochs=1, method="fp32", groups=nu + 1).fit((u, i, r))
    assert m.report_["dataset"]["user_groups"] <= nu


# docs/design.md §4: the methods and ablations every front end offers
DESIGN_METHODS = ("fp32", "fp16", "mascot", "mascot-n1", "mascot-n2", "mascot-naive", "mpt", "muppet", "afp",
                  "als")  # als: issue 21's solver, a plug-in of the same driver


def test_every_method_is_available(tiny):
    # the core's list against the design's, not against itself
    assert sorted(_core.method_names()) == sorted(DESIGN_METHODS)
    u, i, r, nu, ni = tiny
    for m in DESIGN_METHODS:
        f = mascot.MF(method=m, k=8, epochs=2, groups=2, threads=1).fit((u, i, r))
        assert f.report_["config"]["method"] == m
        assert f.P.shape == (nu, 8) and np.isfinite(f.P).all() and np.isfinite(f.Q).all()


def test_method_params():
    m = mascot.MF(method="mpt", method_params={"loss_scale": "dynamic", "loss_scale_window": 100})
    c = m._config()
    assert c.competing.dynamic_loss_scale and c.competing.loss_scale_window == 100
    with pytest.raises(ValueError, match="unknown method parameter"):
        mascot.MF(method="mpt", method_params={"nope": 1})
    with pytest.raises(ValueError, match="loss_scale"):
        mascot.MF(method="mpt", method_params={"loss_scale": -1.0})


def test_defaults_follow_design():
    c = _core.TrainConfig()
    assert (c.k, c.epochs, c.user_groups, c.period, c.warmup) == (128, 50, 100, 2, 5)
    # the product's defaults (measured against LIBMF, docs/benchmarks.md); the paper's are preset paper
    assert c.lr == pytest.approx(0.03) and c.decay == pytest.approx(0.1)
    assert c.lambda_p == pytest.approx(0.05) and c.lambda_q == pytest.approx(0.03)
    assert c.init_std == pytest.approx(0.01) and c.sample_ratio == pytest.approx(0.05)
    assert c.threshold == pytest.approx(20.0) and c.method == "fp32" and c.order == "auto"
