"""benchmarks/scale_mirror.py: a PhysioNet-layout mirror at any size, made from the shared mirror's
real records, that the pipeline's own download code accepts as it would PhysioNet."""

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
import yaml

from conftest import REPO
from synthecg.data.download import download_dataset
from synthecg.data.labels import ClassMap, ptbxl_catalogue
from synthecg.data.physionet import CHECKSUMS_FILE, parse_checksums, sha256_of

spec = importlib.util.spec_from_file_location("scale_mirror", REPO / "benchmarks" / "scale_mirror.py")
scale_mirror = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale_mirror)

PTBXL_RECORDS, ARRHYTHMIA_RECORDS = 300, 200
VERSIONS = {"ptbxl": scale_mirror.PTBXL, "chapman": scale_mirror.ARRHYTHMIA}
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
CLASS_MAP = ClassMap.from_config(CONFIG["classes"])


@pytest.fixture(scope="module")
def built(mirror, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "physionet"
    scale_mirror.build_mirror(out, mirror, PTBXL_RECORDS, ARRHYTHMIA_RECORDS, seed=0)
    return out


def sources(built: Path) -> pd.DataFrame:
    return pd.read_csv(built / "scale_mirror_sources.csv", dtype=str)


def proportions(labels) -> pd.Series:
    return pd.Series(labels).value_counts(normalize=True)


def test_sha256sums_list_every_file_with_its_hash(built):
    for version in VERSIONS.values():
        root = built / version
        listed = parse_checksums((root / CHECKSUMS_FILE).read_text(), str(root / CHECKSUMS_FILE))
        present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {CHECKSUMS_FILE}
        assert set(listed) == present
        assert {path: digest for path, digest in listed.items() if sha256_of(root / path) != digest} == {}


@pytest.mark.parametrize("dataset", ["ptbxl", "chapman"])
def test_a_generated_record_reads_as_its_source_record(built, mirror, dataset):
    version = VERSIONS[dataset]
    for row in sources(built).query("release == @version").head(3).itertuples():
        new = wfdb.rdrecord(str(built / version / row.record_path))
        old = wfdb.rdrecord(str(mirror / version / row.source_record_path))
        name = row.record_path.rsplit("/", 1)[-1]
        assert new.record_name == name
        assert set(new.file_name) == {name + (".dat" if dataset == "ptbxl" else ".mat")}
        assert np.array_equal(new.p_signal, old.p_signal) and new.sig_name == old.sig_name
        assert (new.fs, new.sig_len) == (old.fs, old.sig_len)


def test_every_ptbxl_row_is_its_own_patient_and_names_its_files(built):
    table = pd.read_csv(built / scale_mirror.PTBXL / "ptbxl_database.csv", dtype=str)
    assert len(table) == PTBXL_RECORDS
    assert table["patient_id"].is_unique and table["ecg_id"].is_unique
    for row in table.itertuples():
        ecg_id = int(row.ecg_id)
        folder = f"{ecg_id // 1000 * 1000:05d}"
        assert row.filename_lr == f"records100/{folder}/{ecg_id:05d}_lr"
        assert row.filename_hr == f"records500/{folder}/{ecg_id:05d}_hr"


def test_arrhythmia_names_follow_the_releases_numbering_and_folders():
    names = scale_mirror.arrhythmia_names(scale_mirror.ARRHYTHMIA_RELEASE_RECORDS, np.random.default_rng(0))
    assert len(names) == len(set(names)) == 45_152
    assert names[0] == "WFDBRecords/01/010/JS00001" and names[-1] == "WFDBRecords/46/461/JS45551"
    assert "WFDBRecords/23/236/JS23074" in names and "WFDBRecords/20/206/JS20000" in names
    assert sum(name.rsplit("JS", 1)[1] <= "10646" for name in names) == 10_247  # Chapman, 399 gaps
    per_folder = Counter(name.rsplit("/", 1)[0] for name in names)
    assert max(per_folder.values()) == 100
    assert all(folder.split("/")[1] == folder.split("/")[2][:2] for folder in per_folder)


def test_pipeline_download_reads_the_ptbxl_mirror_with_the_sources_proportions(built, mirror, tmp_path):
    catalogue, manifest, _ = download_dataset(
        "ptbxl", str(built), tmp_path, CLASS_MAP, None, 100, 0, CONFIG["split_fractions"]
    )
    assert len(catalogue) == PTBXL_RECORDS
    assert catalogue["patient_id"].is_unique
    selected = catalogue[catalogue["selected"]]
    assert (selected["download_error"] == "").all() and len(manifest["files"]) > 2 * len(selected)
    source = ptbxl_catalogue(mirror / scale_mirror.PTBXL / "ptbxl_database.csv", CLASS_MAP, 100)
    made, real = proportions(catalogue["label"]), proportions(source["label"])
    assert set(made.index) == set(real.index)  # every class, and the unlabelled records
    assert (made - real).abs().max() < 0.08  # about 3 standard errors at 300 records
    folds_made, folds_real = proportions(catalogue["fold"]), proportions(source["fold"])
    assert (folds_made - folds_real).abs().max() < 0.06


def test_pipeline_download_reads_the_arrhythmia_mirror_with_the_published_proportions(built, tmp_path):
    catalogue, manifest, _ = download_dataset(
        "chapman", str(built), tmp_path, CLASS_MAP, None, 100, 0, CONFIG["split_fractions"]
    )
    assert len(catalogue) == ARRHYTHMIA_RECORDS
    assert (catalogue["reason"] == "").all()  # every drawn rhythm is one class
    assert catalogue["selected"].all() and (catalogue["download_error"] == "").all()
    published = Counter()
    for code, count in scale_mirror.PUBLISHED_RHYTHMS.items():
        published[CLASS_MAP.label("chapman", [code])[0]] += count
    made, real = proportions(catalogue["label"]), pd.Series(published) / sum(published.values())
    assert set(made.index) == set(real.index) == {"SR", "SB", "AFIB", "GSVT"}
    assert (made - real).abs().max() < 0.1  # about 3 standard errors at 200 records


def test_listings_name_every_record_once(built):
    root = built / scale_mirror.ARRHYTHMIA
    folders = (root / "RECORDS").read_text().split()
    listed = [f"{folder}{name}" for folder in folders for name in (root / folder / "RECORDS").read_text().split()]
    headers = sorted(str(p.relative_to(root).with_suffix("")) for p in root.glob("WFDBRecords/*/*/*.hea"))
    assert sorted(listed) == headers and len(listed) == ARRHYTHMIA_RECORDS
    ptbxl = built / scale_mirror.PTBXL
    table = pd.read_csv(ptbxl / "ptbxl_database.csv", dtype=str)
    assert (ptbxl / "RECORDS").read_text().split() == list(table["filename_lr"])


def test_it_refuses_to_write_into_a_folder_with_files(mirror, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        scale_mirror.build_mirror(tmp_path, mirror, 3, 3)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_rehearsal_merges_the_preset_key_by_key_and_reads_each_jobs_resources():
    spec = importlib.util.spec_from_file_location("scale_rehearsal", REPO / "benchmarks" / "scale_rehearsal.py")
    rehearsal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rehearsal)
    base = {"download": {"workers": 8, "retries": 4}, "seed": 0}
    assert rehearsal.merge(base, {"download": {"workers": 2}}) == {"download": {"workers": 2, "retries": 4}, "seed": 0}
    log = (
        "localrule download_dataset:\n    output: results/physionet/ptbxl/records.csv\n"
        "    benchmark: results/benchmarks/download/ptbxl.tsv\n    wildcards: source=ptbxl\n"
        "    resources: tmpdir=/tmp\n"
        "rule preprocess_dataset:\n    output: results/data/chapman.h5, results/data/chapman/qc.csv\n"
        "    benchmark: results/benchmarks/preprocess/chapman.tsv\n    wildcards: source=chapman\n"
        "    threads: 2\n    resources: tmpdir=/tmp, runtime=60, mem_mb=1600, mem=1.6 GB, mem_mib=1526\n"
    )
    assert rehearsal.announced_jobs(log) == {
        "results/benchmarks/download/ptbxl.tsv": {
            "rule": "download_dataset", "wildcards": "source=ptbxl", "threads": 1, "mem_mb": None,
            "outputs": ["results/physionet/ptbxl/records.csv"],
        },
        "results/benchmarks/preprocess/chapman.tsv": {
            "rule": "preprocess_dataset", "wildcards": "source=chapman", "threads": 2, "mem_mb": 1600,
            "outputs": ["results/data/chapman.h5", "results/data/chapman/qc.csv"],
        },
    }


def test_rehearsal_flags_the_goals_a_job_breaks():
    spec = importlib.util.spec_from_file_location("scale_rehearsal", REPO / "benchmarks" / "scale_rehearsal.py")
    rehearsal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rehearsal)
    assert rehearsal.flags("preprocess_dataset", wall_s=259, max_rss_mb=786, mem_mb=1600) == "ok"
    assert rehearsal.flags("download_dataset", wall_s=462, max_rss_mb=349, mem_mb=None) == "no mem_mb"
    assert rehearsal.flags("real_rhythm", wall_s=1200, max_rss_mb=13_000, mem_mb=8000) == (
        "RSS > mem_mb; RSS > 12 GB; wall > 15 min"
    )
    assert rehearsal.flags("train_generator", wall_s=100_000, max_rss_mb=900, mem_mb=32000) == "ok"


def test_rehearsal_compares_outputs_byte_for_byte_but_for_the_workdir_a_text_file_names(tmp_path):
    spec = importlib.util.spec_from_file_location("scale_rehearsal", REPO / "benchmarks" / "scale_rehearsal.py")
    rehearsal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rehearsal)
    one, two = tmp_path / "uninterrupted", tmp_path / "resumed"
    for workdir in (one, two):
        (workdir / "results/data").mkdir(parents=True)
        (workdir / "results/data/qc.csv").write_text(f"JS00064,flat_lead,{workdir}/results/physionet/files/JS00064\n")
        (workdir / "results/data/a.h5").write_bytes(b"\x89HDF" + str(workdir).encode())
    assert rehearsal.same_output(Path("results/data/qc.csv"), one, two)
    assert not rehearsal.same_output(Path("results/data/a.h5"), one, two)  # binary files: every byte
    (two / "results/data/qc.csv").write_text(f"JS00065,flat_lead,{two}/results/physionet/files/JS00065\n")
    assert not rehearsal.same_output(Path("results/data/qc.csv"), one, two)
    assert not rehearsal.same_output(Path("results/data/missing.csv"), one, two)


def test_the_jobs_rehearsal_runs_one_job_of_every_rule_the_preset_runs_but_the_aggregations(tmp_path):
    """--jobs plans, over the paper preset with the rehearsal's models, every rule of the workflow
    but the data stages (rehearsed on their own), the aggregations over the whole grid
    (tables_at_scale.py) and curation (off in the paper preset); one job a rule but the trainings
    and samplings (each generator, each source) and the seeds the closeness report reads. A rule
    added to the workflow fails this until the rehearsal covers it or the list says why not."""
    import re
    import subprocess

    spec = importlib.util.spec_from_file_location("scale_rehearsal", REPO / "benchmarks" / "scale_rehearsal.py")
    rehearsal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rehearsal)
    config = rehearsal.prepare(tmp_path / "work", "http://127.0.0.1:9", REPO / "presets/paper.yaml",
                               rehearsal.REHEARSAL_MODELS)
    command = rehearsal.snakemake_command(tmp_path / "work", rehearsal.rehearsal_targets(config), 2)
    dry = subprocess.run([*command, "--dry-run", "--quiet", "rules"], capture_output=True, text=True, check=True)
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, flags=re.M))
    planned.pop("total")
    every_rule = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk")),
                                flags=re.M))
    data = {"download_dataset", "preprocess_dataset", "merge_datasets"}
    aggregations = {"summarise_tables", "plot_transfer", "plot_augmentation", "plot_confusion", "plot_fidelity",
                    "plot_heart_rate"}
    assert set(planned) - data == every_rule - data - aggregations - {"sample_curated"}
    assert int(planned["train_generator"]) == int(planned["sample_synthetic"]) == 6
    assert int(planned["classifier_real"]) == int(planned["classifier_synthetic"]) == 2  # the closeness report's seeds
    assert all(int(count) == 1 for rule, count in planned.items()
               if rule not in data | {"train_generator", "sample_synthetic", "classifier_real", "classifier_synthetic",
                                      "real_rhythm", "synthetic_rhythm"})
