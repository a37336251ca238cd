"""Image signatures: batched and per-item paths agree, shared renderings, cache round trip."""
import numpy as np
import pytest
from skimage import data

import leakguard as lg
from leakguard.signatures import SignatureCache, SignatureStore, get_signature
from leakguard.signatures.image import dihedral, image_views
from leakguard.splits import build_splits

BATCHED = ["phash", "phash_windows", "thumb", "embed_pyramid", "patches"]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    rgba = np.concatenate([data.coffee()[:90, :120], np.full((90, 120, 1), 128, np.uint8)], axis=2)
    return [data.astronaut()[:200, :300], data.chelsea()[::3, ::3], data.camera()[:120, :90],
            data.astronaut()[:12, :10],                       # tiny (digit-sized)
            rgba,                                             # real alpha
            rng.random((40, 50, 3)).astype(np.float32)]       # float pixels



def assert_read_back_from_cache(splits, kinds, first, cache_dir, n_samples):
    """A second store over the same cache reads every kind of every sample back, equal to the first."""
    cache = SignatureCache(cache_dir)
    again = SignatureStore(splits, cache, progress=False)
    again.ensure(kinds)
    assert cache.misses == 0 and cache.hits == len(kinds) * n_samples
    for split in ("train", "val"):
        for kind in kinds:
            for a, b in zip(first.get(split, kind), again.get(split, kind)):
                assert np.array_equal(np.asarray(a), np.asarray(b)), (split, kind)
    cache.close()

def test_batched_signatures_equal_the_per_item_function(images):
    from leakguard.sources import canonical_item

    items = [canonical_item(im, "image") for im in images]
    for kind in BATCHED:
        spec = get_signature("image", kind)
        assert spec.batch is not None and spec.prepare is not None
        batched = spec.batch([spec.prepare(it) for it in items])
        for it, value in zip(items, batched):
            single = spec.fn(it)
            assert np.array_equal(np.asarray(single), np.asarray(value)), kind


def test_signature_pass_matches_the_functions_and_reads_back_from_the_cache(images, tmp_path):
    from PIL import Image

    from leakguard.sources.readers import read_image

    paths = []
    for i, im in enumerate(images[:5]):  # 8-bit images as files (files have content keys for the cache)
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(paths[-1])
    splits = build_splits({"train": paths[:3], "val": paths[3:]}, modality="image")
    kinds = set(BATCHED) | {"digest", "shape", "patches"}
    first = SignatureStore(splits, SignatureCache(tmp_path / "c"), progress=False)
    first.ensure(kinds)
    first.cache.close()
    for split, offset in (("train", 0), ("val", 3)):
        for kind in kinds:
            for i, value in enumerate(first.get(split, kind)):
                expected = get_signature("image", kind).fn(read_image(paths[offset + i]))
                assert np.array_equal(np.asarray(value), np.asarray(expected)), (split, kind, i)
    assert_read_back_from_cache(splits, kinds, first, tmp_path / "c", len(paths))


def test_renderings_are_shared_and_flip_codes_stay_equivariant(images):
    img = np.ascontiguousarray(images[0])
    views = image_views(img)
    assert image_views(img) is views                     # one rendering set per image
    assert image_views(img.copy()) is not views          # another array, new renderings
    phash = get_signature("image", "phash").fn
    codes = phash(img)
    flipped = phash(np.ascontiguousarray(dihedral(img, 1)))
    # the hflip of the image hashes (nearly) like code 1 of the image
    assert bin(int(flipped[0]) ^ int(codes[1])).count("1") <= 4
    # and is far from an unrelated photo
    other = phash(np.ascontiguousarray(images[1]))
    assert bin(int(other[0]) ^ int(codes[0])).count("1") > 12


def test_whole_audit_of_files_reads_each_image_once_and_finds_planted_copies(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    photo = data.astronaut()
    paths = []
    for i in range(40):
        y, x = rng.integers(0, 380, 2)
        p = tmp_path / f"img_{i:03d}.jpg"
        Image.fromarray(photo[y:y + 128, x:x + 128]).save(p, quality=90)
        paths.append(p)
    flipped = tmp_path / "val_flip.png"
    Image.fromarray(np.asarray(Image.open(paths[3]))[:, ::-1]).save(flipped)
    copy = tmp_path / "val_copy.png"
    Image.fromarray(np.asarray(Image.open(paths[5]))).save(copy)   # same pixels, other format
    report = lg.audit({"train": paths[:30], "val": [flipped, copy] + paths[30:]},
                      checks=["exact_duplicate", "augmented_duplicate"], config=lg.AuditConfig(progress=False))
    pairs = report.pairs()
    exact = pairs[pairs["check"] == "exact_duplicate"]
    assert (1, 5) in set(zip(exact["index_b"], exact["index_a"]))
    aug = pairs[pairs["check"] == "augmented_duplicate"]
    assert (0, 3) in set(zip(aug["index_b"], aug["index_a"]))


def test_in_memory_images_are_read_back_from_the_cache(images, tmp_path):
    # arrays have no key before loading: the second pass finds them by their pixels' digest
    splits = build_splits({"train": images[:3], "val": images[3:]}, modality="image")
    kinds = set(BATCHED) | {"digest", "shape", "patches"}
    first = SignatureStore(splits, SignatureCache(tmp_path / "c"), progress=False)
    first.ensure(kinds)
    first.cache.close()
    assert_read_back_from_cache(splits, kinds, first, tmp_path / "c", len(images))


def test_patch_codes_of_overlapping_tiles_agree_at_the_tiles_offset_also_without_opencv(monkeypatch):
    """Tiles cut from one photo at odd and even offsets share patch codes at exactly that offset;
    a batch gives each image the codes it gets alone; scipy's filters give OpenCV's keypoints."""
    import builtins

    from leakguard.signatures.image import image_patches, patch_samples

    photo = data.astronaut()
    tiles = {(y, x): np.ascontiguousarray(photo[y:y + 160, x:x + 160]) for y, x in
             ((100, 120), (141, 187), (100, 157), (173, 120))}
    codes = image_patches([patch_samples(t) for t in tiles.values()])
    ref = codes[0]
    for (y, x), other in zip(list(tiles)[1:], codes[1:]):
        a = {int(c): (yy, xx) for c, yy, xx in ref}
        offsets = [(a[int(c)][0] - yy, a[int(c)][1] - xx) for c, yy, xx in other if int(c) in a]
        right = sum(o == (y - 100, x - 120) for o in offsets)
        assert right >= 8 and right >= 0.8 * len(offsets), (y, x, offsets)
    for tile, batched in zip(tiles.values(), codes):
        assert np.array_equal(get_signature("image", "patches").fn(tile), batched)
    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("cv2 hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    tile = tiles[(100, 120)]
    without = image_patches([patch_samples(np.ascontiguousarray(tile.copy()))])[0]
    same = len({tuple(r) for r in without.tolist()} & {tuple(r) for r in ref.tolist()})
    assert same >= 0.9 * max(len(ref), len(without)), (same, len(ref), len(without))


def test_renderings_do_not_depend_on_which_was_asked_first_and_percentiles_are_exact():
    from leakguard.signatures.image import ImageViews, _percentiles_of_counts

    img = np.ascontiguousarray(data.astronaut()[:300, :260])
    small_first, large_first = ImageViews(img), ImageViews(img)
    a64 = small_first.rgb_square(64)
    large_first.rgb_square(128)
    assert np.array_equal(a64, large_first.rgb_square(64))
    # the 64 px square is the 2 x 2 average of the 128 px one (within Pillow's rounding)
    box = large_first.rgb_square(128).astype(np.float64).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(box - a64).max() <= 0.5
    rng = np.random.default_rng(0)
    for size in (1, 7, 64 * 64, 128 * 128):
        u8 = rng.integers(rng.integers(0, 128), 256, size).astype(np.uint8)
        assert np.array_equal(_percentiles_of_counts(np.bincount(u8, minlength=256)),
                              np.percentile(u8.astype(np.float32), [1, 99]))


def _jpeg(pixels, **save) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", **save)
    return buf.getvalue()


def _pillow_pixels(path):
    from PIL import Image

    from leakguard.sources.readers import pil_to_array

    with Image.open(path) as img:
        img.load()
        return pil_to_array(img)


def test_opencv_jpeg_decoding_gives_pillows_pixels_and_digest_or_falls_back(tmp_path):
    pytest.importorskip("cv2")
    from PIL import Image

    from leakguard.errors import SampleError
    from leakguard.signatures.exact import image_digest
    from leakguard.sources.readers import _jpeg_opencv_can_decode, read_image

    rng = np.random.default_rng(3)
    photo = data.astronaut()
    fast, slow = {}, {}
    for i in range(24):   # sizes that are not multiples of the 8 / 16 px blocks, every subsampling
        h, w = rng.integers(5, 140, 2)
        y, x = rng.integers(0, 300, 2)
        crop = photo[y:y + h, x:x + w]
        fast[f"s{i}"] = _jpeg(crop, quality=int(rng.integers(20, 98)), subsampling=i % 3, progressive=i % 4 == 1,
                              optimize=i % 2 == 0)
    fast["grey"] = _jpeg(data.camera()[:77, :91], quality=85)
    img = Image.fromarray(photo[:64, :96])
    exif = img.getexif()
    exif[0x0112] = 6                  # "rotate 90": the canonical pixels are the stored ones, unrotated
    fast["exif_rotated"] = _jpeg(photo[:64, :96], exif=exif.tobytes())
    fast["trailing_bytes"] = _jpeg(photo[:40, :40]) + b"not part of the image"
    plain = bytearray(_jpeg(photo[:96, :96], quality=80))
    for k, share in enumerate((0.4, 0.6, 0.8)):   # damaged entropy-coded data: libjpeg decodes on
        damaged = bytearray(plain)
        damaged[int(share * len(plain))] ^= 0x5A
        fast[f"damaged{k}"] = bytes(damaged)
    buf = __import__("io").BytesIO()
    img.convert("CMYK").save(buf, "JPEG")  # Adobe marker, 4 components: converted differently
    slow["cmyk"] = buf.getvalue()
    slow["png"] = (lambda b: (Image.fromarray(photo[:30, :30]).save(b, "PNG"), b.getvalue())[1])(__import__("io").BytesIO())
    for name, blob in {**fast, **slow}.items():
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(blob)
        assert _jpeg_opencv_can_decode(blob) is (name in fast), name
        got = read_image(path)
        expected = _pillow_pixels(path)
        assert got.shape == expected.shape and np.array_equal(got, expected), name
        assert image_digest(got) == image_digest(expected), name
    # truncated: OpenCV gives up, Pillow's error is reported as before
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(bytes(plain[: len(plain) // 2]))
    with pytest.raises(SampleError, match="truncated"):
        read_image(cut)


def test_jpegs_over_pillows_pixel_limit_are_left_to_pillow(monkeypatch):
    pytest.importorskip("cv2")
    from PIL import Image

    from leakguard.sources.readers import _jpeg_opencv_can_decode

    blob = _jpeg(data.astronaut()[:50, :60])
    assert _jpeg_opencv_can_decode(blob)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 * 60 - 1)
    assert not _jpeg_opencv_can_decode(blob)  # Pillow's decompression-bomb check decides


def test_renderings_without_pillow_round_trips_equal_pillows():
    """The 2 x 2 area reduction and the "L" grey are computed outside Pillow; they must be Pillow's."""
    from PIL import Image

    from leakguard.signatures.image import _box_shrink, pillow_luminance

    rng = np.random.default_rng(7)
    pictures = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), np.ascontiguousarray(data.astronaut()[:256, 100:356]),
                rng.integers(0, 256, (300, 260, 3), dtype=np.uint8), rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)]
    for rgb in pictures:
        pil = Image.fromarray(rgb)
        assert np.array_equal(pillow_luminance(rgb), np.asarray(pil.convert("L"), dtype=np.float32))
        for side in (128, 64):
            expected = np.asarray(pil.resize((side, side), Image.BOX, reducing_gap=1.0))
            assert np.array_equal(_box_shrink(rgb, side, None), expected), (rgb.shape, side)
    # every colour: Pillow's integer formula, value for value
    v = np.arange(1 << 24, dtype=np.uint32)[::97]
    rgb = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=1).astype(np.uint8).reshape(1, -1, 3)
    assert np.array_equal(pillow_luminance(rgb), np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32))


def test_lazy_signatures_compute_only_the_samples_asked_for(tmp_path):
    from PIL import Image

    from leakguard.signatures import compute
    from leakguard.signatures.image import thumbnail
    from leakguard.similarity import image_align  # noqa: F401  (registers thumb_kp)
    from leakguard.sources.readers import read_image

    rng = np.random.default_rng(2)
    photo = data.astronaut()
    paths = []
    for i in range(12):
        y, x = rng.integers(0, 380, 2)
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(photo[y:y + 100, x:x + 120]).save(paths[-1], quality=90)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    splits = build_splits({"train": paths[:8], "val": paths[8:] + [tmp_path / "bad.jpg"]}, modality="image")
    loads = []
    store = SignatureStore(splits, SignatureCache(tmp_path / "c"), progress=False)
    original = compute.canonical_item
    compute.canonical_item = lambda item, modality: (loads.append(1), original(item, modality))[1]
    try:
        lazy = store.lazy("train", "thumb_kp")
        assert len(lazy) == 8 and not loads
        assert np.array_equal(lazy[3], thumbnail(read_image(paths[3]), 128))
        assert len(loads) == 1
        lazy.fetch([1, 3, 5])            # 3 is kept: two more reads
        assert len(loads) == 3
        assert np.array_equal(lazy[5], thumbnail(read_image(paths[5]), 128)) and len(loads) == 3
        val = store.lazy("val", "thumb_kp")
        assert val[4] is None and store.skipped["val"][0]["index"] == 4
        assert ("train", "thumb_kp") not in store.values   # nothing computed for the whole split
        # a later store reads the lazily computed values back from the cache
        store.cache.close()
        again = SignatureStore(splits, SignatureCache(tmp_path / "c"), progress=False)
        loads.clear()
        assert np.array_equal(again.lazy("train", "thumb_kp")[5], lazy[5]) and not loads
        again.ensure({"thumb_kp"})   # the whole split: lazy access then reads the computed list
        assert again.lazy("train", "thumb_kp")[7] is again.get("train", "thumb_kp")[7]
    finally:
        compute.canonical_item = original


def _read_with_pillow_only(path):
    """What read_image gave before OpenCV decoding: Pillow's pixels, or the SampleError reason."""
    from leakguard.errors import SampleError
    from leakguard.sources import readers

    saved = readers._FAST_JPEG.get("ok")
    readers._FAST_JPEG["ok"] = False   # the self-check's verdict: OpenCV never used
    try:
        return readers.read_image(path)
    except SampleError as err:
        return err.reason
    finally:
        readers._FAST_JPEG["ok"] = saved


def test_opencv_png_decoding_gives_pillows_pixels_errors_included(tmp_path):
    pytest.importorskip("cv2")
    import io

    from PIL import Image, PngImagePlugin

    from leakguard.errors import SampleError
    from leakguard.sources.readers import _png_opencv_can_decode, read_image

    rng = np.random.default_rng(4)
    photo = data.astronaut()
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "written by a test")
    files = {}
    for i in range(10):
        h, w = rng.integers(3, 90, 2)
        crop = photo[:h, :w] if i % 2 else photo[:h, :w].mean(axis=2).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, "PNG", pnginfo=info if i % 3 == 0 else None, compress_level=i % 10)
        files[f"plain{i}"] = (buf.getvalue(), True)
    for name, img, save in (("palette", Image.fromarray(photo[:40, :40]).convert("P"), {}),
                            ("rgba", Image.fromarray(photo[:40, :40]).convert("RGBA"), {}),
                            ("transparency", Image.fromarray(photo[:40, :40]), {"transparency": (1, 2, 3)}),
                            ("grey16", Image.fromarray((photo[:40, :40, 0].astype(np.uint16) * 257)), {})):
        buf = io.BytesIO()
        try:
            img.save(buf, "PNG", **save)
        except (TypeError, ValueError):
            continue
        files[name] = (buf.getvalue(), False)
    import zlib

    plain = files["plain1"][0]
    gamma = b"gAMA" + (45455).to_bytes(4, "big")   # a colour-space chunk: decoders may treat it apart
    files["gamma"] = (plain[:33] + (4).to_bytes(4, "big") + gamma + zlib.crc32(gamma).to_bytes(4, "big")
                      + plain[33:], False)
    for k in range(40):   # damaged or cut files: the same pixels or the same error as Pillow alone
        damaged = bytearray(plain)
        if k % 2:
            damaged = damaged[: int(rng.integers(20, len(plain)))]
        else:
            damaged[int(rng.integers(8, len(plain)))] ^= int(rng.integers(1, 256))
        files[f"damaged{k}"] = (bytes(damaged), None)
    for name, (blob, fast) in files.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(blob)
        if fast is not None:
            assert _png_opencv_can_decode(blob) is fast, name
        expected = _read_with_pillow_only(path)
        try:
            got = read_image(path)
        except SampleError as err:
            got = err.reason
        if isinstance(expected, str):
            assert got == expected, (name, got)
        else:
            assert not isinstance(got, str) and np.array_equal(got, expected), name


def test_an_image_over_pillows_pixel_limit_is_skipped_with_a_reason(tmp_path, monkeypatch):
    from PIL import Image

    from leakguard.errors import SampleError
    from leakguard.sources.readers import read_image

    paths = []
    for i, fmt in enumerate(("JPEG", "PNG", "BMP")):
        paths.append(tmp_path / f"big{i}.{fmt.lower()}")
        Image.fromarray(data.astronaut()[:60, :60]).save(paths[-1], fmt)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 60 // 2 - 1)   # over twice the limit: an error
    for p in paths:
        with pytest.raises(SampleError, match="too large"):
            read_image(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 60 - 1)        # just over: Pillow warns
    for p in paths:
        with pytest.raises(SampleError, match="too large"):
            read_image(p)
    report = lg.audit({"train": paths[:2], "val": paths[2:]}, checks=["exact_duplicate"],
                      config=lg.AuditConfig(progress=False))
    skipped = [s for rows in report.skipped.values() for s in rows]
    assert len(skipped) == 3
    assert {s["reason"].split(":")[0] for s in skipped} == {"image too large (Pillow's decompression-bomb limit)"}
