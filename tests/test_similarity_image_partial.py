"""Image partial duplicates at any scale: overlapping crops of one photo, resized apart.

Real photos from scikit-image; hard negatives are other crops of the same textures (brick, grass,
gravel), which look alike but share no pixels.
"""
import numpy as np
import pytest

import leakguard as lg
from leakguard.similarity.image_align import have_opencv, image_thumb_kp
from leakguard.similarity.image_partial import (
    cut, disjoint_crops, image_partial_kp, mirrored, resized_overlapping_crops, verify_overlap)
from leakguard.similarity.image_planting import photo

pytestmark = pytest.mark.skipif(not have_opencv(), reason="the any-scale path needs OpenCV")

PHOTOS = ("astronaut", "coffee", "chelsea", "immunohistochemistry", "camera", "coins")
TEXTURES = ("brick", "grass", "gravel")


def _audit(train, val, **options):
    options = {"resized": True, **options}  # the any-scale path is opt-in
    config = lg.AuditConfig(progress=False, check_options={"partial_duplicate": options})
    return lg.audit({"train": train, "val": val}, modality="image",
                    checks=["exact_duplicate", "augmented_duplicate", "partial_duplicate"], config=config)


@pytest.fixture(scope="module")
def planted():
    """6 resized overlapping pairs (train i, val i), training self-overlaps, texture negatives."""
    rng = np.random.default_rng(3)
    train, val, truth = [], [], []
    for name in PHOTOS:
        a, b, share, scale = resized_overlapping_crops(photo(name), rng, share=(0.3, 0.7), scale=(0.6, 1.5))
        train.append(a)
        val.append(b)
        truth.append((share, scale))
    # tiles that overlap inside the training split (cut before splitting): not unrelated pairs
    for name in ("rocket", "clock", "hubble_deep_field"):
        a, b, _, _ = resized_overlapping_crops(photo(name), rng, share=(0.4, 0.8))
        train += [a, b]
    for name in TEXTURES:
        t1, t2, t3, t4 = disjoint_crops(photo(name), rng, n=4)
        train += [t1, t2]
        val += [t3, t4]
    return train, val, truth


def test_resized_overlapping_crops_found_with_share_and_scale(planted):
    train, val, truth = planted
    report = _audit(train, val)
    everything = report.pairs()
    linked = set(zip(everything["index_a"].astype(int), everything["index_b"].astype(int)))
    # a crop keeping most of the other one may be claimed by augmented_duplicate (crop + resize) first
    assert sum((i, i) in linked for i in range(len(PHOTOS))) >= 5, everything
    f = next(f for f in report.findings if f.check == "partial_duplicate")
    pairs = list(zip(f.pairs["index_a"].astype(int), f.pairs["index_b"].astype(int)))
    hits = [i for i in range(len(PHOTOS)) if (i, i) in pairs]
    assert len(hits) >= 4, pairs
    for i in hits:
        k = pairs.index((i, i))
        share, scale = truth[i]
        assert abs(f.extra["overlap_shares"][k] - share) < 0.05
        assert f.extra["methods"][k] == "keypoints"
        assert abs(f.extra["scales"][k] / scale - 1) < 0.1, (f.extra["scales"][k], scale)
        assert f.extra["correlations"][k] >= f.extra["calibration"]["threshold"]
    assert all(b < len(PHOTOS) for _, b in linked), everything
    # no texture crop is linked: a val index >= 6 is a texture
    assert all(b < len(PHOTOS) for _, b in pairs), pairs
    # overlaps inside the training split did not push the threshold up to where copies are
    assert 0.8 <= f.extra["calibration"]["threshold"] < 0.9
    assert "mirrored" in f.extra["calibration"]["source"]


def test_clean_crops_give_no_partial_finding():
    rng = np.random.default_rng(7)
    train, val = [], []
    for name in TEXTURES + PHOTOS:
        crops = disjoint_crops(photo(name), rng, n=2)
        train.append(crops[0])
        val.append(crops[1])
    report = _audit(train, val)
    assert not [f for f in report.findings if f.check == "partial_duplicate"]


def test_resized_off_keeps_the_same_scale_path_only(planted):
    train, val, _ = planted
    report = _audit(train, val, resized=False)
    for f in report.findings:
        if f.check == "partial_duplicate":
            assert set(f.extra["methods"]) == {"patch codes"}


def test_verify_overlap_recovers_scale_share_and_offset():
    img = photo("astronaut")
    a = cut(img, (100, 60, 200))                 # rows 100-300, cols 60-260
    b = cut(img, (200, 160, 160), 0.7)           # rows 200-360, cols 160-320, shrunk to 112 px
    ev = verify_overlap(image_partial_kp(a), image_partial_kp(b), a.shape[:2], b.shape[:2],
                        image_thumb_kp(a), image_thumb_kp(b))
    assert ev is not None and ev["score"] > 0.9
    assert abs(ev["scale"] - 0.7) < 0.03
    assert abs(ev["share"] - (100 * 100) / (160 * 160)) < 0.05
    assert abs(ev["offset"][0] - 100) < 3 and abs(ev["offset"][1] - 100) < 3   # b's origin in a's pixels


def test_mirrored_signature_matches_the_flipped_image_and_never_overlaps_itself():
    img = cut(photo("coffee"), (50, 100, 192))
    flipped = np.ascontiguousarray(img[:, ::-1])
    kp, thumb = image_partial_kp(img), image_thumb_kp(img)
    # the mirrored signature is what the flipped picture's own keypoints look like
    ev = verify_overlap(image_partial_kp(flipped), mirrored(kp, img.shape[:2]), img.shape[:2], img.shape[:2],
                        image_thumb_kp(flipped), np.ascontiguousarray(thumb[:, ::-1]))
    assert ev is not None and ev["score"] > 0.9 and ev["share"] > 0.95
    # and the picture against its own mirror: no similarity transform explains it
    ev = verify_overlap(kp, mirrored(kp, img.shape[:2]), img.shape[:2], img.shape[:2], thumb,
                        np.ascontiguousarray(thumb[:, ::-1]))
    assert ev is None or ev["score"] < 0.8
