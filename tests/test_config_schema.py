"""The schema describes every classifier and generator setting as its config dataclass has it, and
rejects what the dataclasses do not know, while leaving the user's settings as they wrote them."""

import copy
import dataclasses
import types
import typing

import jsonschema
import pytest
import yaml

from conftest import REPO
from synthecg.classifier.classical_augmentation import ClassicalAugmentation
from synthecg.classifier.resnet1d import ClassifierConfig
from synthecg.config import load_schema, merge_configs, parse_overrides, validate_config
from synthecg.errors import PipelineError
from synthecg.generators.diffwave import DiffWaveConfig
from synthecg.generators.timediffusion import TimeDiffusionConfig
from synthecg.generators.timevqvae import TimeVQVAEConfig

SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)

# Where each dataclass's settings live in config.yaml.
SETTINGS = {
    "classifier": (ClassifierConfig, ("classifier",)),
    "diffwave": (DiffWaveConfig, ("generators", "diffwave")),
    "timediffusion": (TimeDiffusionConfig, ("generators", "timediffusion")),
    "timevqvae": (TimeVQVAEConfig, ("generators", "timevqvae")),
    "classical_augmentation": (ClassicalAugmentation, ("experiments", "classical_augmentation")),
}

JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def schema_of(path: tuple[str, ...]) -> dict:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node


def json_types(hint) -> set[str]:
    """The JSON-schema types a value of the annotation `hint` takes in YAML."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*(json_types(arg) for arg in typing.get_args(hint)))
    if hint is tuple or typing.get_origin(hint) is tuple:
        return {"array"}
    return {JSON_TYPES[hint]}


def as_yaml(value):
    """A dataclass default as config.yaml writes it: tuples as lists (None stays None, YAML's null)."""
    return [as_yaml(item) for item in value] if isinstance(value, tuple) else value


def field_default(field: dataclasses.Field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", SETTINGS)
def test_every_dataclass_field_is_described_with_its_type_and_default(name):
    config_class, path = SETTINGS[name]
    properties = schema_of(path)["properties"]
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        key = ".".join([*path, field.name])
        assert field.name in properties, f"{key}: a {config_class.__name__} field the schema does not describe"
        prop = properties[field.name]
        assert isinstance(prop.get("description"), str) and prop["description"].strip(), f"{key}: no description"
        assert "type" in prop, f"{key}: no type"
        schema_types = {prop["type"]} if isinstance(prop["type"], str) else set(prop["type"])
        assert schema_types == json_types(hints[field.name]), f"{key}: type {prop['type']} for {hints[field.name]}"
        assert "default" in prop, f"{key}: no default"
        expected = as_yaml(field_default(field))
        assert prop["default"] == expected and type(prop["default"]) is type(expected), (
            f"{key}: schema default {prop['default']!r}, {config_class.__name__} default {expected!r}"
        )
        jsonschema.Draft202012Validator(prop).validate(prop["default"])  # its own bounds admit it


@pytest.mark.parametrize("name", SETTINGS)
def test_every_schema_property_is_a_dataclass_field(name):
    config_class, path = SETTINGS[name]
    node = schema_of(path)
    fields = {field.name for field in dataclasses.fields(config_class)}
    assert set(node["properties"]) - fields == set()
    assert node["additionalProperties"] is False and node["default"] == {}
    for key, prop in node["properties"].items():
        assert {"description", "type", "default"} <= set(prop), f"{'.'.join(path)}.{key}"


def test_the_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"classifier": {"filter": [8, 8, 8]}}, "config key classifier: unknown settings ['filter']"),
        ({"generators": {"timevqvae": {"prior_step": 10}}}, "config key generators.timevqvae: unknown settings ['prior_step']"),
        ({"generators": {"diffwave": {"steps": "many"}}}, "config key generators.diffwave.steps: 'many' is not of type 'integer'"),
        ({"generators": {"diffwave": {"learning_rate": "1e-3"}}}, "config key generators.diffwave.learning_rate: '1e-3' is not of type"),
        ({"generators": {"timediffusion": {"kernel_size": 4}}}, "config key generators.timediffusion.kernel_size"),
        ({"classifier": {"eval_aggregate": "median"}}, "config key classifier.eval_aggregate: 'median' is not one of"),
        ({"classifier": {"architecture": "resnet50"}}, "config key classifier.architecture: 'resnet50' is not one of"),
        ({"classifier": {"class_weighting": "inverse"}}, "config key classifier.class_weighting: 'inverse' is not one of"),
    ],
)
def test_bad_model_settings_fail_naming_the_key(override, message):
    config = merge_configs(load("config.yaml"), override)
    with pytest.raises(PipelineError) as error:
        validate_config(config, SCHEMA_PATH)
    assert message in str(error.value)


@pytest.mark.parametrize("preset", [None, *sorted(p.name for p in (REPO / "presets").glob("*.yaml"))])
def test_config_and_presets_validate_and_keep_only_the_settings_they_set(preset):
    """Only what the user wrote reaches the classifier's and generators' params: the schema's
    defaults of their fields are not filled in, so describing them changes no job's params."""
    config = load("config.yaml")
    if preset:
        config = merge_configs(config, load(f"presets/{preset}"))
    written = copy.deepcopy(config)
    validate_config(config, SCHEMA_PATH)
    assert config["classifier"] == written["classifier"]
    for name in ("diffwave", "timediffusion", "timevqvae"):
        assert config["generators"][name] == written["generators"][name]
    assert config["generators"]["training"]["device"] == "auto"  # other objects still get their defaults


def test_unset_model_settings_stay_empty():
    config = load("config.yaml")
    del config["classifier"], config["generators"]["diffwave"]
    validate_config(config, SCHEMA_PATH)
    assert config["classifier"] == {} and config["generators"]["diffwave"] == {}


def test_command_line_settings_name_nested_keys_and_read_their_values_as_yaml():
    """The benchmarks' `--set` / `--variant` KEY=VALUE: a dotted key reaches a nested setting, and a
    number written without a dot (1e-3, which YAML 1.1 leaves a string) is still a number."""
    settings = parse_overrides(["generators.timevqvae.batch_size=128", "generators.timevqvae.learning_rate=1e-3",
                                "classifier.class_weighting=sampler", "sampling.per_class=null"])
    assert settings == {"generators": {"timevqvae": {"batch_size": 128, "learning_rate": 1e-3}},
                        "classifier": {"class_weighting": "sampler"}, "sampling": {"per_class": None}}
    merged = merge_configs(load("config.yaml"), settings)
    assert merged["generators"]["timevqvae"]["batch_size"] == 128
    assert merged["generators"]["timevqvae"]["steps"] == load("config.yaml")["generators"]["timevqvae"]["steps"]
    with pytest.raises(PipelineError, match="'batch_size' is not KEY=VALUE"):
        parse_overrides(["batch_size"])
    with pytest.raises(PipelineError, match="'generators' is set to a value"):
        parse_overrides(["generators=1", "generators.timevqvae.steps=2"])
