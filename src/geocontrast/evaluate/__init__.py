"""Evaluation protocols on an encoder: embeddings, linear probe, fine-tune, kNN, downstream tasks, taxonomy ranks.

Files (``R = results/<dataset>``):

- ``R/embeddings/<strategy>/seed<seed>.npy``: (N, D) float16 frozen-encoder features of every manifest row, in
  manifest order (``random_init`` is the untrained encoder of the same architecture).
- ``R/eval/<strategy>/seed<seed>/<protocol>_l<pct>.json``: one evaluation (see :data:`RESULT_COLUMNS`); protocol
  is ``finetune``, ``linear`` or ``knn``, or a downstream task of :data:`TASKS`; the most-common-species baseline
  is strategy ``most_common``, protocol ``baseline``; a fused pair (:mod:`geocontrast.evaluate.fusion`) is
  strategy ``<first>+<second>``, protocol ``fusion``. Species-identification records also keep which test photos
  were hit (``test_hits``, :func:`geocontrast.metrics.hit_record`).
- ``R/tasks/genus_pairs_l<pct>.json``: the genus pairs of the genus-discrimination task, chosen once for all
  strategies from the labelled train images' pixels.

The prior's files are :mod:`geocontrast.prior`'s, the results table's and comparisons' :mod:`geocontrast.results`'.
"""

from geocontrast.metrics import TOP_K as TOP_K
from geocontrast.registry import PROBE_RANKS as PROBE_RANKS
from geocontrast.registry import RANKS as RANKS
from geocontrast.registry import TASKS as TASK_SPECS

PROTOCOL_TITLES = {
    "finetune": "fine-tune",
    "linear": "linear probe",
    "knn": "kNN on frozen features",
    "fusion": "linear probe on two strategies' fused features",
}
"""How figures and plain-words summaries name the species-identification protocols."""

TASKS = tuple(TASK_SPECS)
"""Downstream tasks on frozen features (:mod:`geocontrast.evaluate.tasks`); ``<rank>_probe`` is the linear
probe trained on labels at that rank (its top-k columns are then at that rank)."""
CLASSIFICATION_METRIC_COLUMNS = (
    *(f"top{k}" for k in TOP_K),
    "macro_top1",
    "macro_top5",
    *(f"prior_top{k}" for k in TOP_K),
    "prior_gain_top1",
    "prior_gain_top5",
    *(f"acc_{rank}" for rank in RANKS),
)
"""Fractions in [0, 1] on the test split. top<k>: micro top-k accuracy; macro_top<k>: averaged over the species
present in the test split; prior_top<k>: top-k after multiplying by the geographic prior; prior_gain_top<k> =
prior_top<k> - top<k>; acc_<rank>: top-1 accuracy after mapping prediction and label to that rank."""
TASK_METRIC_COLUMNS = (
    "pairs_similar_accuracy",
    "pairs_distinct_accuracy",
    "mislabel_auc",
    "mislabel_precision",
    "nmi_species",
    "ari_species",
    "nmi_genus",
    "ari_genus",
)
"""Downstream tasks (NaN in other rows): pairs_<kind>_accuracy: mean test accuracy of binary probes between the most
similar / most distinct genus pairs; mislabel_auc, mislabel_precision: ROC-AUC and precision at the true noise
rate of finding injected wrong labels; nmi_<rank>, ari_<rank>: k-means clusters of the test images against
their species / genera."""
METRIC_COLUMNS = (*CLASSIFICATION_METRIC_COLUMNS, *TASK_METRIC_COLUMNS)
RUN_COLUMNS = (
    "dataset",
    "strategy",
    "seed",
    "protocol",
    "encoder",
    "resolution",
    "epochs",
    "pretrain_steps",  # what the pretraining job spent (geocontrast.train.spent.pretraining_facts)
    "pretrain_anchors",
    "pretrain_images",
    "pretrain_seconds",
    "pretrain_label_fraction",  # percent of the train labels the encoder was pretrained on (0: none)
    "pretrain_collapse",  # how the pretrained representation collapsed ("": it did not; train.monitor)
    "split_mode",
    "replicate",  # the data replicate (splits, label subsets, geo tables, prior): the seed, or 0 when shared
    "label_fraction",
    "n_labelled",
    "n_test",
    "n_classes",
)
"""What every result row records about its run; label_fraction is in percent (10 = the 10 % subset)."""
RESULT_COLUMNS = (*RUN_COLUMNS, *METRIC_COLUMNS)
