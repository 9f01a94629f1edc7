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


def test_training_crops_can_refuse_one_class_filling_the_view():
    # MMSegmentation's cat_max_ratio: a crop where one class covers more than the share is drawn again, so
    # zoomed-in crops of sky alone become rare; at 1 (the default) every crop is kept, drawn as before
    from rtseg.data.transforms import TrainTransform

    img = np.zeros((100, 100, 3), np.uint8)
    label = np.zeros((100, 100), np.uint8)  # sky everywhere
    label[60:, 60:] = 3  # road in one corner: one 40x40 crop in six shows it over a quarter of its pixels

    def mixed_share(**kw) -> float:
        t = TrainTransform((40, 40), scale=(1.0, 1.0), jitter=0, rng=np.random.default_rng(0), **kw)
        crops = [t(img, label)[1] for _ in range(300)]
        return float(np.mean([len(np.unique(c)) > 1 and np.bincount(c.ravel()).max() < 0.75 * c.size for c in crops]))

    plain, limited = mixed_share(), mixed_share(max_class_share=0.75)
    assert plain < 0.3 and limited > 0.75, (plain, limited)  # 0.16 and 0.83 = 1 - (1 - 0.16) ** 10 with these seeds
    same = [TrainTransform((40, 40), rng=np.random.default_rng(1), **kw)(img, label)[1] for kw in ({}, {"max_class_share": 1.0})]
    assert np.array_equal(*same)
