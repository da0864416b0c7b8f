"""The classifier's settings and the choice of its 1D ResNet.

`architecture` picks the network:
- `resnet1d_wang` (default): the PTB-XL benchmark's model (Strodthoff et al. 2021), resnet1d_wang.py;
- `wang2017_resnet`: Wang, Yan and Oates' (2017) ResNet as in dl-4-tsc, wang2017_resnet.py.

The benchmark's protocol is part of the settings: training on random 2.5 s crops of each record,
and predicting a record from sliding 2.5 s windows (stride 1.25 s) whose class probabilities are
aggregated by their maximum (helme/ecg_ptbxl_benchmarking, code/models/fastai_model.py:
input_size 2.5 s, chunk_length_valid = input_size, stride_length_valid = input_size // 2,
aggregate_fn "max"). Setting the seconds to null or 0 trains and predicts on whole records.
Seconds become samples through the records' sampling rate, which callers pass in (`fs`).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from synthecg.classifier import resnet1d_wang, wang2017_resnet
from synthecg.errors import PipelineError

ARCHITECTURES = ("resnet1d_wang", "wang2017_resnet")
AGGREGATES = ("max", "mean")
CLASS_WEIGHTINGS = ("none", "loss", "sampler")
EARLY_STOPPING_METRICS = ("macro_f1", "macro_auroc")


@dataclass(frozen=True)
class SlidingWindows:
    """How a record is predicted from windows, in samples."""

    length: int
    stride: int
    aggregate: str  # max or mean of the windows' class probabilities


@dataclass(frozen=True)
class ClassifierConfig:
    architecture: str = "resnet1d_wang"  # resnet1d_wang (PTB-XL benchmark) or wang2017_resnet (Wang et al. 2017)
    # channels of each residual block; None = the architecture's: resnet1d_wang 128, 128, 128 (its stem
    # has the first block's width), wang2017_resnet 64, 128, 128
    filters: tuple[int, ...] | None = None
    # kernel sizes; None = the architecture's: resnet1d_wang stem, first and second convolution of a
    # block (7, 5, 3; odd only), wang2017_resnet the three convolutions of a block (8, 5, 3)
    kernels: tuple[int, ...] | None = None
    head_hidden: int = 128  # resnet1d_wang: hidden units of the head, 0 = none (benchmark: lin_ftrs_head [128])
    head_dropout: float = 0.5  # resnet1d_wang: dropout before the output layer, half before the hidden (ps_head)
    train_crop_seconds: float | None = 2.5  # a random crop of each record per step (benchmark); None/0 = whole records
    eval_window_seconds: float | None = 2.5  # validation/test: windows of this length (benchmark); None/0 = whole
    eval_window_stride_seconds: float = 1.25  # step between windows (benchmark: half a window)
    eval_aggregate: str = "max"  # windows' probabilities -> the record's: max (benchmark's aggregate_fn) or mean
    batch_size: int = 64  # records per step
    learning_rate: float = 1e-3  # AdamW
    weight_decay: float = 1e-2  # AdamW
    max_epochs: int = 50  # upper bound; early stopping usually ends sooner
    patience: int = 8  # epochs without a better validation score before stopping
    # The validation score that picks the epoch and stops training: macro_f1, or macro_auroc (ranks
    # every record, so it moves in finer steps than F1 on a small validation split).
    early_stopping_metric: str = "macro_f1"
    finetune_learning_rate: float = 1e-4  # AdamW, when fine-tuning a pretrained model on real data
    # Against class imbalance (SR outnumbers SB ~35:1 in PTB-XL): none (the benchmark's plain loss);
    # loss: cross-entropy weighted by inverse class frequency; sampler: class-balanced batches.
    class_weighting: str = "none"
    # Fine-tuning scores the pretrained weights on validation first (epoch 0) and keeps them when no
    # fine-tuning epoch beats them: a few real records must not make a good pretrained model worse.
    finetune_keep_pretrained: bool = True

    def __post_init__(self):
        def fail(key, message):
            raise PipelineError(f"config key classifier.{key}: {message}")

        if self.architecture not in ARCHITECTURES:
            fail("architecture", f"unknown architecture {self.architecture!r}; choose from {list(ARCHITECTURES)}")
        if self.eval_aggregate not in AGGREGATES:
            fail("eval_aggregate", f"{self.eval_aggregate!r} is neither of {list(AGGREGATES)}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            fail("class_weighting", f"{self.class_weighting!r} is none of {list(CLASS_WEIGHTINGS)}")
        if self.early_stopping_metric not in EARLY_STOPPING_METRICS:
            fail("early_stopping_metric", f"{self.early_stopping_metric!r} is none of {list(EARLY_STOPPING_METRICS)}")
        if self.filters is not None and (not self.filters or min(self.filters) < 1):
            fail("filters", f"{self.filters} must be a non-empty list of positive channel counts")
        if self.kernels is not None:
            if len(self.kernels) != 3 or min(self.kernels) < 1:
                fail("kernels", f"{self.kernels} must be three positive kernel sizes")
            if self.architecture == "resnet1d_wang" and any(k % 2 == 0 for k in self.kernels):
                fail("kernels", f"{self.kernels}: resnet1d_wang pads by (k - 1) // 2 and needs odd kernels")
        for key in ("train_crop_seconds", "eval_window_seconds"):
            if (getattr(self, key) or 0) < 0:
                fail(key, "must be positive, or null/0 for whole records")
        if self.eval_window_stride_seconds <= 0:
            fail("eval_window_stride_seconds", "must be positive")

    def train_crop_samples(self, fs: float | None) -> int | None:
        """Length of the random training crops at sampling rate fs; None: whole records."""
        return _samples(self.train_crop_seconds, fs, "train_crop_seconds")

    def eval_windows(self, fs: float | None) -> SlidingWindows | None:
        """The sliding windows that validation and test predictions use at fs; None: whole records."""
        length = _samples(self.eval_window_seconds, fs, "eval_window_seconds")
        if length is None:
            return None
        stride = max(1, round(self.eval_window_stride_seconds * fs))
        return SlidingWindows(length, stride, self.eval_aggregate)


def _samples(seconds: float | None, fs: float | None, key: str) -> int | None:
    if not seconds:
        return None
    if fs is None:
        raise PipelineError(f"config key classifier.{key}: {seconds} s needs the records' sampling rate (fs)")
    return max(1, round(seconds * fs))


def make_classifier_config(overrides: Mapping | None) -> ClassifierConfig:
    known = set(ClassifierConfig.__dataclass_fields__)
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise PipelineError(f"config key classifier: unknown settings {unknown}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items()}
    return ClassifierConfig(**values)


def build_classifier(config: ClassifierConfig, n_leads: int, n_classes: int) -> nn.Module:
    """The configured network. Every architecture maps records [B, leads, T] to logits [B, classes]
    (`forward`) and to pooled features (`embed`, for FID and MMD), and carries `n_classes` and
    its `config`."""
    if config.architecture == "resnet1d_wang":
        model = resnet1d_wang.ResNet1dWang(
            n_leads, n_classes, config.filters or resnet1d_wang.DEFAULT_FILTERS,
            config.kernels or resnet1d_wang.DEFAULT_KERNELS, config.head_hidden, config.head_dropout,
        )
    else:
        model = wang2017_resnet.Wang2017ResNet(
            n_leads, n_classes, config.filters or wang2017_resnet.DEFAULT_FILTERS,
            config.kernels or wang2017_resnet.DEFAULT_KERNELS,
        )
    model.config = config
    return model
