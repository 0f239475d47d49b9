"""The paper's numbers, in one place: He, Chen, Xie, Li, Dollár, Girshick, *Masked Autoencoders
Are Scalable Vision Learners* (arXiv 2111.06377, CVPR 2022), as its tables print them.

The ablations module and the chapters' tables read them from here, so no number of the paper is
typed twice. Accuracies are ImageNet-1K top-1 in %; a pair is (fine-tuning, linear probing).
"""

from __future__ import annotations

from typing import Any

# Table 1: ablations with ViT-L/16 on ImageNet-1K, 800 epochs of pre-training. "If not
# specified, the default is: the decoder has depth 8 and width 512, the reconstruction target is
# unnormalized pixels, the data augmentation is random resized cropping, the masking ratio is
# 75%" (its caption). Each sub-table: row -> (ft, lin).
TABLE_1: dict[str, dict] = {
    "decoder depth": {1: (84.8, 65.5), 2: (84.9, 70.0), 4: (84.9, 71.9), 8: (84.9, 73.5),
                      12: (84.4, 73.3)},                                               # 1a
    "decoder width": {128: (84.9, 69.1), 256: (84.8, 71.3), 512: (84.9, 73.5),
                      768: (84.4, 73.1), 1024: (84.3, 73.1)},                          # 1b
    "mask token": {"encoder w/ [M]": (84.2, 59.6), "encoder w/o [M]": (84.9, 73.5)},   # 1c
    "reconstruction target": {"pixel (w/o norm)": (84.9, 73.5),
                              "pixel (w/ norm)": (85.4, 73.9), "PCA": (84.6, 72.3),
                              "dVAE token": (85.3, 71.6)},                             # 1d
    "data augmentation": {"none": (84.0, 65.7), "crop, fixed size": (84.7, 73.1),
                          "crop, rand size": (84.9, 73.5),
                          "crop + color jit": (84.3, 71.9)},                           # 1e
    "mask sampling": {("random", 75): (84.9, 73.5), ("block", 50): (83.9, 72.3),
                      ("block", 75): (82.8, 63.9), ("grid", 75): (84.0, 66.0)},       # 1f
}
# The row of each sub-table that is the default setting (the same model every time).
TABLE_1_DEFAULTS = {"decoder depth": 8, "decoder width": 512, "mask token": "encoder w/o [M]",
                    "reconstruction target": "pixel (w/o norm)",
                    "data augmentation": "crop, rand size", "mask sampling": ("random", 75)}
# Table 1c's FLOPs column: "we reduce the overall training FLOPs by 3.3x" (Sec. 4.1).
MASK_TOKEN_FLOPS = {"encoder w/ [M]": 3.3, "encoder w/o [M]": 1.0}
# Footnote 1 (Sec. 3): computing the loss on all pixels "leads to a slight decrease in
# accuracy (e.g., ~0.5%)".
LOSS_ON_ALL_PIXELS_DROP = 0.5

# Table 2: wall-clock time of 800 epochs of pre-training on 128 TPU-v3 cores, decoder width
# 512, mask 75%: (encoder, decoder depth) -> (ft accuracy or None, hours, speedup or None).
# The speedup is against the same encoder with mask tokens; ViT-H's hours with mask tokens
# are "estimated by training ten epochs".
TABLE_2: dict[tuple[str, int], tuple[float | None, float, float | None]] = {
    ("ViT-L, w/ [M]", 8): (84.2, 42.4, None),
    ("ViT-L", 8): (84.9, 15.4, 2.8),
    ("ViT-L", 1): (84.8, 11.6, 3.7),
    ("ViT-H, w/ [M]", 8): (None, 119.6, None),
    ("ViT-H", 8): (85.8, 34.5, 3.5),
    ("ViT-H", 1): (85.9, 29.3, 4.1),
}

# Table 3: end-to-end fine-tuning on ImageNet-1K; MAE reconstructs normalized pixels and is
# pre-trained for 1600 epochs. method -> {model: accuracy}.
TABLE_3: dict[str, dict[str, float]] = {
    "scratch, our impl.": {"ViT-B": 82.3, "ViT-L": 82.6, "ViT-H": 83.1},
    "DINO": {"ViT-B": 82.8},
    "MoCo v3": {"ViT-B": 83.2, "ViT-L": 84.1},
    "BEiT": {"ViT-B": 83.2, "ViT-L": 85.2},
    "MAE": {"ViT-B": 83.6, "ViT-L": 85.9, "ViT-H": 86.9, "ViT-H448": 87.8},
}

# Fig. 9 (Sec. 4.3), the points its text states for the ViT-L MAE of Table 1 (800 epochs):
# accuracy (%) by the number of its 24 Transformer blocks fine-tuned. "Tuning 0 blocks is
# linear probing; 24 is full fine-tuning" (the caption): Table 1's default row.
PARTIAL_FINETUNING = {0: 73.5, 1: 81.0, 24: 84.9}
# ... and tuning only "half" of the last block, its MLP sub-block (Sec. 4.3).
PARTIAL_FINETUNING_LAST_MLP = 79.1
# MoCo v3's side of Fig. 9: "MoCo v3 has higher linear probing accuracy; however, all of its
# partial fine-tuning results are worse than MAE. The gap is 2.6% when tuning 4 blocks."
PARTIAL_FINETUNING_GAP_AT_4 = 2.6

# The curves of Figs. 7 and 9 as the paper prints them: each point's value is printed on the
# plot. These are READINGS of the printed labels, not numbers of the text: the labels are
# assigned to points in the order of the x axis, which the text's "improves steadily" (Fig. 7)
# and "consistently better than MoCo v3 if one or more blocks are tuned" (Fig. 9) make
# unambiguous; they agree with every point the text and the tables state (checked by tests).
# Fig. 7, "Training schedules" (ViT-L, Table 1's default): epochs -> (ft, lin).
FIG_7_READINGS: dict[int, tuple[float, float]] = {
    100: (82.3, 57.3), 200: (83.3, 64.4), 400: (84.3, 69.7), 800: (84.9, 73.5),
    1600: (85.1, 75.1)}
# Fig. 9, partial fine-tuning of ViT-L: blocks tuned (of 24) -> accuracy.
FIG_9_READINGS: dict[str, dict[int, float]] = {
    "MAE": {0: 73.5, 1: 81.0, 2: 83.1, 4: 84.2, 6: 84.4, 12: 84.6, 18: 84.7, 24: 84.9},
    "MoCo v3": {0: 77.6, 1: 79.9, 2: 80.8, 4: 81.6, 6: 81.9, 12: 83.2, 18: 83.8, 24: 84.1},
}
# Fig. 5, "Masking ratio" (ViT-L, Table 1's default), as far as the text states it: the linear
# probe "increases steadily with the masking ratio until the sweet point: the accuracy gap is
# up to ~20% (54.6% vs. 73.5%)", and for fine-tuning "a wide range of masking ratios (40-80%)
# work well. All fine-tuning results in Figure 5 are better than training from scratch
# (82.5%)". The plot's other labels cannot be assigned to ratios from the text, so they are
# left out. ratio (%) -> accuracy; the lowest ratio plotted is 10%.
FIG_5_LINEAR_PROBE = {10: 54.6, 75: 73.5}
FIG_5_FINETUNE = {75: 84.9}
FIG_5_FINETUNE_GOOD_RANGE = (40, 80)
SCRATCH_VIT_L = 82.5  # Sec. 4's "scratch, our impl." (Table 3 prints 82.6 for its recipe)
# Fig. 8, MAE against supervised pre-training by model size: its MAE and "supervised, IN1K,
# our impl." points are Table 3's MAE and scratch rows (224 size); the parameter counts (M) are
# the ViT paper's (Dosovitskiy et al., Table 1). Its other two series, the ViT paper's own
# IN1K and JFT-300M results, are not transcribed.
VIT_PARAMS_M = {"ViT-B": 86, "ViT-L": 307, "ViT-H": 632}


# Table 9 (appendix A.1): the default end-to-end fine-tuning setting, as the table prints it.
# "Our fine-tuning follows common practice of supervised ViT training. The default setting is
# in Table 9. We use layer-wise lr decay [10] following [2]" (ELECTRA, BEiT). Entries that
# differ by model are keyed by encoder. The base lr is per 256 images: A.1 states the linear
# scaling rule, lr = base_lr x batchsize / 256, for pre-training, and the official
# main_finetune.py applies it to fine-tuning too. Chapter 7 sets the book's recipe beside it.
TABLE_9: dict[str, Any] = {
    "optimizer": "AdamW",
    "base learning rate": 1e-3,
    "weight decay": 0.05,
    "optimizer momentum": (0.9, 0.999),  # beta1, beta2
    "layer-wise lr decay": 0.75,
    "batch size": 1024,
    "learning rate schedule": "cosine decay",
    "warmup epochs": 5,
    "training epochs": {"ViT-B": 100, "ViT-L": 50, "ViT-H": 50},
    "augmentation": "RandAug (9, 0.5)",
    "label smoothing": 0.1,
    "mixup": 0.8,
    "cutmix": 1.0,
    "drop path": {"ViT-B": 0.1, "ViT-L": 0.1, "ViT-H": 0.2},
}


def ft_lin(pair: tuple[float, float]) -> str:
    """A (fine-tuning, linear probing) pair as the book prints it: '84.9 / 73.5'. The
    ablations appendix."""
    return f"{pair[0]:.1f} / {pair[1]:.1f}"


def table_1(group: str, row) -> tuple[float, float]:
    """One row of Table 1, e.g. `table_1("decoder depth", 1)` -> (84.8, 65.5); a clear error
    names the rows a sub-table has. The ablations appendix."""
    if group not in TABLE_1:
        raise KeyError(f"Table 1 has no sub-table {group!r}; it has {sorted(TABLE_1)}")
    rows = TABLE_1[group]
    if row not in rows:
        raise KeyError(f"Table 1 ({group}) has no row {row!r}; its rows are {list(rows)}")
    return rows[row]


# Table 4: COCO detection and segmentation, ViT Mask R-CNN; (AP box, AP mask) per model.
TABLE_4: dict[str, dict[str, tuple[float, float]]] = {
    "supervised (IN1K w/ labels)": {"ViT-B": (47.9, 42.9), "ViT-L": (49.3, 43.9)},
    "MoCo v3": {"ViT-B": (47.9, 42.7), "ViT-L": (49.3, 44.0)},
    "BEiT": {"ViT-B": (49.8, 44.4), "ViT-L": (53.3, 47.1)},
    "MAE": {"ViT-B": (50.3, 44.9), "ViT-L": (53.3, 47.2)},
}

# Table 5: ADE20K semantic segmentation with UperNet, mIoU.
TABLE_5: dict[str, dict[str, float]] = {
    "supervised (IN1K w/ labels)": {"ViT-B": 47.4, "ViT-L": 49.9},
    "MoCo v3": {"ViT-B": 47.3, "ViT-L": 49.1},
    "BEiT": {"ViT-B": 47.1, "ViT-L": 53.3},
    "MAE": {"ViT-B": 48.1, "ViT-L": 53.6},
}

# Table 6: transfer to classification datasets, MAE pre-trained on IN1K then fine-tuned;
# columns ViT-B, ViT-L, ViT-H, ViT-H448, and the previous best (Places: that best was
# pre-trained on 1 billion (Places205) or 3.5 billion (Places365) images).
TABLE_6: dict[str, tuple[float, float, float, float, float]] = {
    "iNat 2017": (70.5, 75.7, 79.3, 83.4, 75.4),
    "iNat 2018": (75.4, 80.1, 83.0, 86.8, 81.2),
    "iNat 2019": (80.5, 83.4, 85.7, 88.3, 84.1),
    "Places205": (63.9, 65.8, 65.9, 66.8, 66.0),
    "Places365": (57.9, 59.4, 59.8, 60.3, 58.0),
}

# Table 7: pixels vs. tokens as the target; IN1K top-1, COCO AP box, ADE20K mIoU. "The
# difference is statistically insignificant."
TABLE_7: dict[str, dict[str, float]] = {
    "pixel (w/o norm)": {"IN1K ViT-B": 83.3, "IN1K ViT-L": 85.1, "IN1K ViT-H": 86.2,
                         "COCO ViT-B": 49.5, "COCO ViT-L": 52.8,
                         "ADE20K ViT-B": 48.0, "ADE20K ViT-L": 51.8},
    "pixel (w/ norm)": {"IN1K ViT-B": 83.6, "IN1K ViT-L": 85.9, "IN1K ViT-H": 86.9,
                        "COCO ViT-B": 50.3, "COCO ViT-L": 53.3,
                        "ADE20K ViT-B": 48.1, "ADE20K ViT-L": 53.6},
    "dVAE token": {"IN1K ViT-B": 83.6, "IN1K ViT-L": 85.7, "IN1K ViT-H": 86.9,
                   "COCO ViT-B": 50.3, "COCO ViT-L": 53.2,
                   "ADE20K ViT-B": 48.1, "ADE20K ViT-L": 53.4},
}

# Table 13 (appendix C): the Table 3 models on ImageNet variants, no specialized fine-tuning;
# top-1 %, except IN-C, a mean corruption error (lower is better). Columns ViT-B, ViT-L, ViT-H.
TABLE_13: dict[str, dict[str, tuple[float, float, float]]] = {
    "MAE": {"IN-Corruption": (51.7, 41.8, 33.8), "IN-Adversarial": (35.9, 57.1, 68.2),
            "IN-Rendition": (48.3, 59.9, 64.4), "IN-Sketch": (34.5, 45.3, 49.6)},
    "supervised": {"IN-Corruption": (45.8, 42.3, 41.3), "IN-Adversarial": (27.2, 29.6, 33.1),
                   "IN-Rendition": (49.4, 50.9, 50.3), "IN-Sketch": (35.6, 37.5, 38.0)},
}

# Linear probing of ViT-L (appendix B, Table 12, and Fig. 9's text): MAE against MoCo v3.
LINEAR_PROBE_VIT_L = {"MAE": 75.8, "MoCo v3": 77.6}
