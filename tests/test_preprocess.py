import numpy as np

from rtseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rtseg.runtime.preprocess import Preprocessor


def test_matches_the_reference_normalisation():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (36, 48, 3), np.uint8)  # BGR, already at model size
    x = Preprocessor((36, 48), IMAGENET_MEAN, IMAGENET_STD)(frame)
    ref = ((frame[:, :, ::-1] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, 36, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x, ref, atol=1e-5)


def test_resizes_to_the_model_input_and_reuses_pooled_buffers():
    pre = Preprocessor((32, 40), IMAGENET_MEAN, IMAGENET_STD, pool_size=2)
    frame = np.zeros((100, 120, 3), np.uint8)
    a = pre(frame)
    b = pre(frame)
    assert a.shape == (1, 3, 32, 40) and a is not b
    pre.pool.release(a)
    assert pre(frame) is a  # the released buffer comes back: no per-frame allocation
