"""Classification metrics, with undefined values reported as missing with their reason.

Macro averages run over the classes present in the test split: a class with no test record
has no recall, so its F1 and AUROC are listed under `missing` instead of counted as 0.

Besides the scores, a report holds the 95 % bootstrap intervals of macro-F1 and macro-AUROC
(synthecg.evaluation.statistics), the test predictions themselves (`test_labels`,
`test_probabilities`) and the scores on each shared resample (`resampled`), from which the tables
compute intervals of seed means and of differences.
"""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from synthecg.evaluation.statistics import CONFIDENCE, MACRO_METRICS, bootstrap_intervals, method, resampled_scores

PROBABILITY_DECIMALS = 6  # float32 softmax carries about 7; fewer would tie confident records and shift AUROC


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, classes: list[str],
                           intervals: bool = True) -> dict:
    """y_true [N] class indices, probabilities [N, classes] -> the metrics of metrics.json.

    `intervals=False` skips the bootstrap (and stores no predictions), for scores nobody reports
    with an interval, e.g. a real classifier scored on a large synthetic set."""
    y_true = np.asarray(y_true)
    y_pred = probabilities.argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    missing = {}
    if not present:
        reason = "the test split is empty"
        empty = {key: None for key in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall",
                                       "macro_f1", "macro_auroc")}
        per_class = {name: None for name in classes}
        metrics = {"classes": classes, "n_test": 0, "macro_over_classes": [], **empty,
                   "per_class_f1": per_class, "per_class_recall": dict(per_class), "per_class_auroc": dict(per_class),
                   "confusion_matrix": [[0] * len(classes) for _ in classes],
                   "missing": {**{key: reason for key in empty},
                               **{f"per_class_{m}.{name}": reason for m in ("f1", "recall", "auroc")
                                  for name in classes}}}
        if intervals:
            metrics["intervals"] = {**{metric: None for metric in MACRO_METRICS}, "confidence": CONFIDENCE,
                                    "method": method()}
            metrics["missing"].update({f"intervals.{metric}": reason for metric in MACRO_METRICS})
            metrics.update(test_labels=[], test_probabilities=[])
        return metrics
    for index, name in enumerate(classes):
        if index not in present:
            reason = f"class {name} has no record in the test split"
            missing[f"per_class_f1.{name}"] = reason
            missing[f"per_class_recall.{name}"] = reason
            missing[f"per_class_auroc.{name}"] = reason
    per_class_f1 = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    per_class_recall = recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    metrics = {
        "classes": classes,
        "n_test": int(len(y_true)),
        "macro_over_classes": [classes[i] for i in present],
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_precision": float(precision_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class_f1": {name: None for name in classes},
        "per_class_recall": {name: None for name in classes},
        "per_class_auroc": {name: None for name in classes},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(range(len(classes)))).tolist(),
    }
    for index, f1, recall in zip(present, per_class_f1, per_class_recall):
        metrics["per_class_f1"][classes[index]] = float(f1)
        metrics["per_class_recall"][classes[index]] = float(recall)
    if len(present) < 2:
        missing["macro_auroc"] = "fewer than two classes in the test split: AUROC is undefined"
        metrics["macro_auroc"] = None
    else:
        aurocs = []
        for index in present:  # one class against the rest
            score = float(roc_auc_score(y_true == index, probabilities[:, index]))
            metrics["per_class_auroc"][classes[index]] = score
            aurocs.append(score)
        metrics["macro_auroc"] = float(np.mean(aurocs))
    if intervals:
        # On the predictions as stored, so that the tables, which resample the same records of every
        # run, take these resamples as they are instead of scoring every run again (most of their
        # time at the releases' test sizes); anyone can recompute them from the file.
        stored = np.round(np.asarray(probabilities, float), PROBABILITY_DECIMALS)
        resampled = resampled_scores(y_true, stored)
        metrics["intervals"] = bootstrap_intervals(resampled)
        for metric in MACRO_METRICS:
            if metrics["intervals"][metric] is None:
                missing[f"intervals.{metric}"] = missing.get(metric, f"{metric} is undefined on every resample")
        metrics["test_labels"] = y_true.tolist()
        metrics["test_probabilities"] = stored.tolist()
        metrics["resampled"] = {"method": method(), **{
            metric: [float(v) if np.isfinite(v) else None for v in resampled[metric]] for metric in MACRO_METRICS}}
    metrics["missing"] = missing
    return metrics

