"""mae_tutorial.paper, the one home of the paper's numbers: checks of what the paper's tables
imply about each other (not a second copy of them), and of the helpers."""

import pytest

from mae_tutorial import paper
from mae_tutorial.lab import ablations


def test_every_sub_table_of_table_1_holds_the_same_default_model():
    # the default row of Table 1a-f is one model (depth 8, width 512, raw pixels, random
    # resized crop, random 75%, no mask token in the encoder): the same pair everywhere
    defaults = {paper.table_1(g, row) for g, row in paper.TABLE_1_DEFAULTS.items()}
    assert defaults == {(84.9, 73.5)}
    assert set(paper.TABLE_1_DEFAULTS) == set(paper.TABLE_1)


def test_table_2_speedups_are_its_hours_ratios():
    hours = {key: h for key, (_, h, _) in paper.TABLE_2.items()}
    for (encoder, depth), (_, h, speedup) in paper.TABLE_2.items():
        if speedup is None:  # the reference rows, with mask tokens
            continue
        reference = hours[f"{encoder}, w/ [M]", 8]
        assert round(reference / h, 1) == speedup, (encoder, depth)
    # Table 2's ViT-L rows with the 8-block decoder are Table 1c's fine-tuning column
    assert paper.TABLE_2["ViT-L, w/ [M]", 8][0] == paper.table_1("mask token", "encoder w/ [M]")[0]
    assert paper.TABLE_2["ViT-L", 8][0] == paper.table_1("mask token", "encoder w/o [M]")[0]


def test_table_1_names_its_rows_when_asked_for_a_missing_one():
    assert paper.table_1("decoder depth", 1) == (84.8, 65.5)
    with pytest.raises(KeyError, match="no row 3; its rows are"):
        paper.table_1("decoder depth", 3)
    with pytest.raises(KeyError, match="no sub-table 'depth'"):
        paper.table_1("depth", 1)
    assert paper.ft_lin((84.9, 73.5)) == "84.9 / 73.5"


def test_the_ablations_quote_the_paper_module():
    # each row's paper column is built from mae_tutorial.paper: change a number there and the
    # appendix's table follows
    rows = ablations.ABLATIONS
    assert rows["dec_depth4"].paper == paper.ft_lin(paper.table_1("decoder depth", 4))
    assert paper.ft_lin(paper.table_1("mask sampling", ("grid", 75))) == rows["grid"].paper
    token = paper.table_1("mask token", "encoder w/ [M]")
    assert rows["encoder_mask_token"].paper.startswith(f"{paper.ft_lin(token)} at 3.3x")


def test_table_7_normalized_pixels_are_the_mae_rows_of_tables_3_to_5():
    # Table 7's "pixel (w/ norm)" row is the MAE of Tables 3 (ImageNet), 4 (COCO box AP) and
    # 5 (ADE20K): the same models, so the same numbers
    norm = paper.TABLE_7["pixel (w/ norm)"]
    for model in ("ViT-B", "ViT-L", "ViT-H"):
        assert norm[f"IN1K {model}"] == paper.TABLE_3["MAE"][model]
    for model in ("ViT-B", "ViT-L"):
        assert norm[f"COCO {model}"] == paper.TABLE_4["MAE"][model][0]
        assert norm[f"ADE20K {model}"] == paper.TABLE_5["MAE"][model]
    assert all(len(row) == 7 for row in paper.TABLE_7.values())


def test_fig_9_ends_are_table_1_default_probe_and_fine_tuning():
    ft, lin = paper.table_1("decoder depth", 8)
    assert paper.PARTIAL_FINETUNING[0] == lin and paper.PARTIAL_FINETUNING[24] == ft
    points = [paper.PARTIAL_FINETUNING[k] for k in sorted(paper.PARTIAL_FINETUNING)]
    assert points == sorted(points)  # more blocks tuned, higher accuracy
    assert lin < paper.PARTIAL_FINETUNING_LAST_MLP < paper.PARTIAL_FINETUNING[1]


def test_table_9_covers_the_models_of_table_3_and_the_book_follows_it_where_it_says_so():
    import inspect

    from mae_tutorial import finetune

    t9 = paper.TABLE_9
    # its per-model rows name the three encoders Table 3 trains from scratch and with MAE
    for key in ("training epochs", "drop path"):
        assert set(t9[key]) == set(paper.TABLE_3["scratch, our impl."]), key
    # larger models: fewer epochs, no less drop path
    epochs = [t9["training epochs"][m] for m in ("ViT-B", "ViT-L", "ViT-H")]
    drop = [t9["drop path"][m] for m in ("ViT-B", "ViT-L", "ViT-H")]
    assert epochs == sorted(epochs, reverse=True) and drop == sorted(drop)
    # chapter 7's table: the book keeps Table 9's optimizer settings and regularizer rates,
    # with ViT-B's drop path, and its 10% warm-up is Table 9's share for ViT-L/H
    defaults = {k: p.default for k, p in inspect.signature(finetune.finetune).parameters.items()}
    assert defaults["base_lr"] == t9["base learning rate"]
    assert defaults["weight_decay"] == t9["weight decay"]
    assert defaults["layer_decay"] == t9["layer-wise lr decay"]
    assert defaults["label_smoothing"] == t9["label smoothing"]
    assert defaults["drop_path_rate"] == t9["drop path"]["ViT-B"]
    source = inspect.getsource(finetune.finetune)
    assert f"adamw(groups, {t9['optimizer momentum']}, device)" in source
    assert "math.ceil(total * 0.1)" in source
    assert t9["warmup epochs"] / t9["training epochs"]["ViT-L"] == 0.1


def test_the_figures_readings_agree_with_every_point_the_text_and_tables_state():
    ft_default, lin_default = paper.table_1("decoder depth", 8)
    # Fig. 7: 800 epochs is Table 1's default; both curves rise steadily
    assert paper.FIG_7_READINGS[800] == (ft_default, lin_default)
    for curve in (0, 1):
        points = [paper.FIG_7_READINGS[e][curve] for e in sorted(paper.FIG_7_READINGS)]
        assert points == sorted(points) and len(set(points)) == len(points)
    # Fig. 9: the stated points, the 2.6-point gap at 4 blocks, MAE ahead from 1 block on,
    # MoCo v3's full fine-tuning is Table 3's and its 0 blocks is appendix B's probe
    mae, moco = paper.FIG_9_READINGS["MAE"], paper.FIG_9_READINGS["MoCo v3"]
    assert {k: mae[k] for k in paper.PARTIAL_FINETUNING} == paper.PARTIAL_FINETUNING
    assert round(mae[4] - moco[4], 1) == paper.PARTIAL_FINETUNING_GAP_AT_4
    assert moco[0] == paper.LINEAR_PROBE_VIT_L["MoCo v3"] > mae[0]
    assert moco[24] == paper.TABLE_3["MoCo v3"]["ViT-L"]
    assert list(mae) == list(moco) and all(mae[k] > moco[k] for k in mae if k >= 1)
    for points in (list(mae.values()), list(moco.values())):
        assert points == sorted(points)
    # Fig. 5: the text's two linear-probe points, 75% is Table 1's default, and every
    # fine-tuning beats training from scratch
    assert paper.FIG_5_LINEAR_PROBE[75] == lin_default and paper.FIG_5_FINETUNE[75] == ft_default
    assert round(paper.FIG_5_LINEAR_PROBE[75] - paper.FIG_5_LINEAR_PROBE[10]) == 19  # "~20%"
    assert min(paper.FIG_5_FINETUNE.values()) > paper.SCRATCH_VIT_L
    low, high = paper.FIG_5_FINETUNE_GOOD_RANGE
    assert low < 75 < high
    # Fig. 8: one parameter count per Table 3 model that has a 224-size scratch row
    assert set(paper.VIT_PARAMS_M) == set(paper.TABLE_3["scratch, our impl."])
