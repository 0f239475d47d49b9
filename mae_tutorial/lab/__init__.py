"""The lab: the experiments the chapters and the benchmarks share.

The package's third layer. Below it, the core (the model) and the machinery around it (data,
checkpoints, optimizers, figures); then the two entry points, `train` and `evaluate`, each a
library and a command line. The lab is the only code besides those command lines that imports
them, and only notebooks and benchmarks import the lab:

- `cache`: the book's pre-trained models, fine-tunings and baseline tables, computed once and
  then loaded;
- `ablations`: the paper's ablation variants at small scale, each pre-trained and measured;
- `results`: the measurements shipped with the package, which chapters read;
- `speed`: the real training step, timed (`speed.images_per_second`).
"""

from . import ablations, cache, results, speed
from .cache import (
    baselines_once,
    book_model,
    contrastive_once,
    default_cache,
    finetune_once,
    pretrain_once,
    run_key,
)
from .results import (
    dataset_choice_runs,
    finetune_judge_runs,
    frozen_features_runs,
    read_json,
    read_result,
    representation_runs,
)

__all__ = ["ablations", "baselines_once", "book_model", "cache", "contrastive_once",
           "dataset_choice_runs", "default_cache", "finetune_judge_runs", "finetune_once",
           "frozen_features_runs", "pretrain_once", "read_json", "read_result",
           "representation_runs", "results", "run_key", "speed"]
