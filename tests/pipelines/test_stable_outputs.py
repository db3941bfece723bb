"""Outputs that DVC tracks have the same bytes when made again from the same inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import plots


def test_a_skops_model_saved_twice_has_the_same_bytes_and_loads_back(tmp_path):
    import skops.io as sio
    from sklearn.cluster import KMeans
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler

    from pipelines.io import write_skops

    X = np.random.default_rng(1).normal(size=(300, 3))

    def fitted():
        steps = [("scale", RobustScaler()), ("k", KMeans(4, n_init=2, random_state=0))]
        return Pipeline(steps).fit(X)

    # two equal models that are other objects at other memory addresses, as on two runs
    a, b = fitted(), fitted()
    assert id(a[-1].cluster_centers_) != id(b[-1].cluster_centers_)
    write_skops(a, tmp_path / "a.skops")
    write_skops(b, tmp_path / "b.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    path = tmp_path / "a.skops"
    got = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(got.predict(X), a.predict(X))
    np.testing.assert_array_equal(got[-1].cluster_centers_, a[-1].cluster_centers_)


def test_the_beeswarm_draws_the_same_picture_and_leaves_numpy_s_state(tmp_path):
    rng = np.random.default_rng(4)
    contrib = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    data = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    for name in ("one.png", "two.png"):
        plots.save(plots.beeswarm(contrib, data, np.zeros(400)), tmp_path / name)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert (np.random.get_state()[1] == before).all()  # noqa: NPY002
    import matplotlib.pyplot as plt

    stray = plt.figure(figsize=(3, 2))  # a figure some other code left open: not drawn on
    plots.save(plots.beeswarm(contrib, data, np.zeros(400)), tmp_path / "three.png")
    assert plt.fignum_exists(stray.number) and not stray.axes
    plt.close(stray)
    assert (tmp_path / "three.png").read_bytes() == (tmp_path / "one.png").read_bytes()
