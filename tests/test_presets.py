"""The paper preset really is full scale, and it stays a valid config."""

import dataclasses

import yaml

from conftest import REPO
from synthecg.classifier.resnet1d import ClassifierConfig, build_classifier, make_classifier_config
from synthecg.config import merge_configs, validate_config
from synthecg.generators.base import make_config

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def classifier_parameters(settings) -> int:
    return sum(p.numel() for p in build_classifier(make_classifier_config(settings), 12, 4).parameters())


def test_paper_preset_restores_every_full_scale_model_setting():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = merge_configs(default, yaml.safe_load((REPO / "presets/paper.yaml").read_text()))
    validate_config(paper, SCHEMA)
    assert paper["max_records_per_class"] is None
    for name in paper["generators"]["names"]:
        full_scale = dataclasses.asdict(make_config(name, {}))
        assert dataclasses.asdict(make_config(name, paper["generators"][name])) == full_scale, name
    assert make_classifier_config(paper["classifier"]) == ClassifierConfig(filters=(128, 128, 128))
    assert classifier_parameters(paper["classifier"]) == classifier_parameters({})  # the benchmark's width


def test_default_config_is_valid_and_small():
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)
    assert config["max_records_per_class"] is not None
    for name in config["generators"]["names"]:
        small, full = make_config(name, config["generators"][name]), make_config(name, {})
        assert small.steps < full.steps and small.batch_size <= full.batch_size
    assert classifier_parameters(config["classifier"]) < classifier_parameters({})


def test_cpu_preset_is_valid_and_uses_every_record_with_small_models():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    cpu = validate_config(merge_configs(default, yaml.safe_load((REPO / "presets/cpu.yaml").read_text())), SCHEMA)
    assert cpu["max_records_per_class"] is None and cpu["generators"]["resources"]["threads"] == 1
    for name in cpu["generators"]["names"]:
        model = make_config(name, cpu["generators"][name])
        assert model.steps < make_config(name, {}).steps
    assert classifier_parameters(cpu["classifier"]) < classifier_parameters({})


def test_gpu_preset_shares_one_card_and_scales_the_generators_past_the_cpu_preset():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    preset = {name: merge_configs(default, yaml.safe_load((REPO / f"presets/{name}.yaml").read_text()))
              for name in ("cpu", "gpu")}
    gpu = validate_config(preset["gpu"], SCHEMA)
    assert gpu["gpu_slots"] == {"generators": 1, "classifiers": 1}  # three trainings at once on one card
    assert len(gpu["experiments"]["seeds"]) >= 10 and gpu["generators"]["replicates"] >= 3
    for name in gpu["generators"]["names"]:
        cpu_model, gpu_model = (make_config(name, preset[p]["generators"][name]) for p in ("cpu", "gpu"))
        assert gpu_model.batch_size >= 8 * cpu_model.batch_size, name
        assert gpu_model.steps * gpu_model.batch_size > cpu_model.steps * cpu_model.batch_size, name
