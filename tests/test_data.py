import pickle
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from mae_tutorial.augment import (
    AugmentedImages,
    DeviceAugment,
    loader_transform,
    resized_crop_batch,
    sample_crop_boxes,
)
from mae_tutorial.data import (
    DATASET_STATS,
    SYNTHETIC_CLASSES,
    load_cifar10,
    load_dataset,
    make_synthetic,
)


def test_synthetic_is_deterministic_and_balanced():
    a_imgs, a_labels = make_synthetic(600, seed=3)
    b_imgs, b_labels = make_synthetic(600, seed=3)
    assert a_imgs.shape == (600, 3, 32, 32) and a_imgs.dtype == torch.uint8
    assert torch.equal(a_imgs, b_imgs) and torch.equal(a_labels, b_labels)
    assert not torch.equal(make_synthetic(600, seed=4)[0], a_imgs)
    counts = torch.bincount(a_labels, minlength=10)
    assert len(SYNTHETIC_CLASSES) == 10 and counts.min() > 30


def test_synthetic_statistics_match_the_constants():
    imgs, _ = make_synthetic(5000, seed=0)
    x = imgs.float() / 255
    mean, std = DATASET_STATS["synthetic"]
    assert torch.allclose(x.mean((0, 2, 3)), torch.tensor(mean), atol=0.01)
    assert torch.allclose(x.std((0, 2, 3)), torch.tensor(std), atol=0.01)


def test_synthetic_classes_differ_in_shape_not_colour():
    imgs, labels = make_synthetic(2000, seed=0)
    x = imgs.float() / 255
    # mean colour per class is about the same: colour does not give the class away
    per_class = torch.stack([x[labels == c].mean((0, 2, 3)) for c in range(10)])
    assert (per_class.max(0).values - per_class.min(0).values).max() < 0.08
    # but the foreground area differs by class (a ring covers less than a square)
    diff = (x - x[:, :, :1, :1]).abs().sum(1) > 0.2  # pixels unlike the top-left corner
    area = torch.stack([diff[labels == c].float().mean() for c in range(10)])
    assert area.max() / area.min() > 1.3


def test_load_dataset_by_name():
    train = load_dataset("synthetic", synthetic_size=300)
    test = load_dataset("synthetic", train=False)
    assert len(train) == 300 and len(test) == 10_000
    assert not torch.equal(train.images[:10], test.images[:10])
    assert train.classes == SYNTHETIC_CLASSES
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*synthetic"):
        load_dataset("imagenet")


def _write_fake_cifar(root, n_per_batch=20):
    """Files in CIFAR-10's on-disk format (python pickles of uint8 rows, channel-planar)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        data = rng.integers(0, 256, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        written[name] = (data, labels)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)
    return written


def test_cifar10_from_files_in_the_official_format(tmp_path, monkeypatch):
    written = _write_fake_cifar(tmp_path)
    # torchvision checks each file's MD5 against the real release; ours are stand-ins
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    train = load_cifar10(tmp_path, train=True, download=False)
    test = load_dataset("cifar10", root=tmp_path, train=False, download=False)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert len(test) == 20 and test.classes[0] == "airplane"
    data, labels = written["data_batch_1"]
    # the first row is image 0: 1024 red values, then 1024 green, then 1024 blue
    assert torch.equal(train.images[0], torch.from_numpy(data[0]).view(3, 32, 32))
    assert train.labels[:20].tolist() == labels


def test_cifar10_errors_name_their_real_cause(tmp_path, monkeypatch):
    def failing(exc):
        def fail(*args, **kwargs):
            raise exc
        return fail

    cifar = torchvision.datasets.cifar
    monkeypatch.setattr(cifar, "download_and_extract_archive",
                        failing(urllib.error.URLError("no network")))
    with pytest.raises(RuntimeError, match="could not be loaded") as info:
        load_cifar10(tmp_path, download=True)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "--dataset synthetic" in message
    assert "connect to the internet" in message
    # a damaged archive is not an offline machine: the message says so
    monkeypatch.setattr(cifar, "download_and_extract_archive",
                        failing(RuntimeError("File not found or corrupted.")))
    with pytest.raises(RuntimeError, match="may be damaged") as info:
        load_cifar10(tmp_path, download=True)
    assert "internet" not in str(info.value)
    with pytest.raises(RuntimeError, match="download=False.*local rank 0"):
        load_cifar10(tmp_path, download=False)


def test_device_crop_equals_torchvision_resized_crop():
    imgs = torch.rand(3, 3, 32, 32)
    boxes = torch.tensor([[0, 0, 32, 32], [5, 7, 16, 20], [10, 2, 22, 13]], dtype=torch.float32)
    ours = resized_crop_batch(imgs, boxes, 32, mode="bilinear")
    for i, (top, left, h, w) in enumerate(boxes.int().tolist()):
        ref = TF.resized_crop(imgs[i], top, left, h, w, [32, 32],
                              interpolation=v2.InterpolationMode.BILINEAR, antialias=False)
        assert (ours[i] - ref).abs().max() < 1e-5, i
    flipped = resized_crop_batch(imgs, boxes[:1], 32, flip=torch.tensor([True]), mode="bilinear")
    assert torch.allclose(flipped[0], imgs[0].flip(-1), atol=1e-6)


def test_crop_boxes_follow_torchvision_distribution():
    torch.manual_seed(0)
    n = 4000
    ours = sample_crop_boxes(n, 32, 32, generator=torch.Generator().manual_seed(0))
    crop = v2.RandomResizedCrop(32, scale=(0.2, 1.0))
    params = [crop.make_params([torch.zeros(3, 32, 32)]) for _ in range(n)]
    theirs = torch.tensor([[p["top"], p["left"], p["height"], p["width"]] for p in params],
                          dtype=torch.float32)
    for boxes in (ours, theirs):
        assert (boxes[:, 2] >= 1).all() and (boxes[:, 0] + boxes[:, 2] <= 32).all()
        assert (boxes[:, 1] + boxes[:, 3] <= 32).all()
    area_ours = (ours[:, 2] * ours[:, 3] / 1024).mean()
    area_theirs = (theirs[:, 2] * theirs[:, 3] / 1024).mean()
    assert abs(area_ours - area_theirs) < 0.02
    assert abs((ours[:, 3] / ours[:, 2]).log().mean() - (theirs[:, 3] / theirs[:, 2]).log().mean()
               ) < 0.03


def test_both_pipelines_give_the_same_kind_of_batch():
    data = load_dataset("synthetic", synthetic_size=512)
    loader = torch.utils.data.DataLoader(
        AugmentedImages(data, loader_transform(data.mean, data.std)),
        batch_size=512, sampler=[(i, i) for i in range(512)])
    from_loader, labels = next(iter(loader))
    on_device = DeviceAugment(data.mean, data.std)(data.images,
                                                   torch.Generator().manual_seed(0))
    assert from_loader.shape == on_device.shape == (512, 3, 32, 32)
    assert torch.equal(labels, data.labels)
    for batch in (from_loader, on_device):
        assert abs(batch.mean()) < 0.1 and abs(batch.std() - 1) < 0.1
    # per-sample seeds make the DataLoader path reproducible
    again, _ = next(iter(loader))
    assert torch.equal(again, from_loader)


def test_demo_photos_are_real_photographs():
    from mae_tutorial.data import IMAGENET_MEAN, IMAGENET_STD, denormalize
    from mae_tutorial.photos import PHOTOS, demo_photos

    imgs, names = demo_photos(224)
    assert imgs.shape == (len(PHOTOS), 3, 224, 224) and names == PHOTOS
    pixels = denormalize(imgs, IMAGENET_MEAN, IMAGENET_STD)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    # photographs: plenty of detail (neighbouring pixels differ) and colour
    assert (pixels[..., 1:] - pixels[..., :-1]).abs().mean() > 0.01
    assert pixels.std(dim=(0, 2, 3)).min() > 0.1
    with pytest.raises(ValueError, match="unknown photo"):
        from mae_tutorial.photos import load_photo
        load_photo("mona lisa")


def test_photo_crops_shapes_determinism_and_split():
    from mae_tutorial.photos import PHOTO_HELD_OUT, PHOTO_TEST_SIZE, PHOTOS, make_photo_crops

    imgs, labels = make_photo_crops(300, seed=0)
    assert imgs.shape == (300, 3, 32, 32) and imgs.dtype == torch.uint8
    again, again_labels = make_photo_crops(300, seed=0)
    assert torch.equal(imgs, again) and torch.equal(labels, again_labels)
    assert not torch.equal(make_photo_crops(300, seed=1)[0], imgs)
    longer, _ = make_photo_crops(400, seed=0)  # more crops extend the same sequence
    assert torch.equal(longer[:300], imgs)
    # every training photograph is cropped, the held-out one never
    held_out = PHOTOS.index(PHOTO_HELD_OUT)
    assert set(labels.tolist()) == set(range(len(PHOTOS))) - {held_out}
    train = load_dataset("photos", synthetic_size=300)
    test = load_dataset("photos", train=False)
    assert torch.equal(train.images, imgs) and train.classes == PHOTOS
    assert len(test) == PHOTO_TEST_SIZE and (test.labels == held_out).all()
    # no test crop equals a training crop
    train_rows = {bytes(x.numpy()) for x in make_photo_crops(5000, seed=0)[0]}
    assert not any(bytes(x.numpy()) in train_rows for x in test.images)
    with pytest.raises(ValueError, match="split must be"):
        make_photo_crops(10, split="val")


def test_photo_crops_are_varied_and_match_their_statistics():
    from mae_tutorial.photos import make_photo_crops

    imgs, _ = make_photo_crops(5000, seed=0)
    x = imgs.float() / 255
    mean, std = DATASET_STATS["photos"]
    assert torch.allclose(x.mean((0, 2, 3)), torch.tensor(mean), atol=0.01)
    assert torch.allclose(x.std((0, 2, 3)), torch.tensor(std), atol=0.01)
    # crops at several scales: the detail inside a crop varies a lot from crop to crop
    detail = (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    assert detail.quantile(0.9) > 3 * detail.quantile(0.1)
    # most crops differ (at the smallest sizes a photograph has only a few distinct crops)
    assert len({bytes(c.numpy()) for c in imgs}) > 0.8 * len(imgs)


@pytest.mark.parametrize("name", ["patterns", "shapes_on_patterns", "scattered_shapes"])
def test_generated_sets_are_deterministic_balanced_and_split(name):
    train = load_dataset(name, synthetic_size=600, seed=3)
    again = load_dataset(name, synthetic_size=600, seed=3)
    assert train.images.shape == (600, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    assert not torch.equal(load_dataset(name, synthetic_size=600, seed=4).images, train.images)
    assert len(train.classes) == 10 and torch.bincount(train.labels, minlength=10).min() > 30
    test = load_dataset(name, train=False, seed=3).first(600)
    flat_train, flat_test = train.images.flatten(1), test.images.flatten(1)
    same = (flat_train[:, None, :] == flat_test[None, :200, :]).all(-1)
    assert not same.any()  # no test image is a training image


@pytest.mark.parametrize("name", ["patterns", "shapes_on_patterns", "scattered_shapes"])
def test_generated_sets_statistics_match_the_constants(name):
    x = load_dataset(name, synthetic_size=5000).images.float() / 255
    mean, std = DATASET_STATS[name]
    assert torch.allclose(x.mean((0, 2, 3)), torch.tensor(mean), atol=0.01)
    assert torch.allclose(x.std((0, 2, 3)), torch.tensor(std), atol=0.01)


def test_patterns_differ_in_texture_not_colour_or_brightness():
    """Every class draws its two colours the same way, so the mean colour of a class gives
    nothing away, and images of one class are no closer in pixels than images of two."""
    data = load_dataset("patterns", synthetic_size=2000)
    x = data.images.float() / 255
    per_class = torch.stack([x[data.labels == c].mean((0, 2, 3)) for c in range(10)])
    assert (per_class.max(0).values - per_class.min(0).values).max() < 0.06
    flat = torch.nn.functional.normalize(x.flatten(1) - x.flatten(1).mean(1, keepdim=True), dim=1)
    sim = flat[:500] @ flat[:500].T
    same = data.labels[:500, None] == data.labels[None, :500]
    off_diagonal = ~torch.eye(500, dtype=torch.bool)
    within, between = sim[same & off_diagonal].mean(), sim[~same].mean()
    assert abs(within - between) < 0.05  # pixel correlation says little about the class


def test_shape_masks_are_the_shapes_of_the_synthetic_set():
    from mae_tutorial.data import shape_masks

    g = torch.Generator().manual_seed(0)
    masks = shape_masks(torch.arange(10), g, 32)
    assert masks.shape == (10, 32, 32) and masks.dtype == torch.bool
    area = masks.float().mean((1, 2))
    assert (area > 0.03).all() and area[3] < area[0]  # a ring covers less than a disk
