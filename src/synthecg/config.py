"""Config validation against the workflow's JSON schema, with messages that name the key."""

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from synthecg.errors import PipelineError


def merge_configs(base: Mapping, override: Mapping) -> dict:
    """`override` merged into `base` key by key, as Snakemake merges a --configfile over configfile:."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        nested = isinstance(value, Mapping) and isinstance(result.get(key), Mapping)
        result[key] = merge_configs(result[key], value) if nested else copy.deepcopy(value)
    return result


def read_config(*paths: str | Path | None) -> dict:
    """YAML config files merged in order, each over the ones before it (None is skipped), as
    Snakemake merges --configfile over configfile:, without validation or defaults."""
    config: dict = {}
    for path in filter(None, paths):
        config = merge_configs(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def parse_overrides(pairs: list[str]) -> dict:
    """`KEY=VALUE` strings as a nested dict, for merge_configs: a dotted KEY
    (`generators.timevqvae.batch_size=128`) names a nested setting; VALUE is read as YAML."""
    result: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise PipelineError(f"setting {pair!r} is not KEY=VALUE")
        value = yaml.safe_load(text)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        *parents, leaf = key.split(".")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise PipelineError(f"setting {pair!r}: {parent!r} is set to a value, not to settings")
        node[leaf] = value
    return result


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _fill_defaults(config: dict, schema: Mapping) -> None:
    """Write the schema's defaults into `config` where a key is missing, object by object.

    An object marked `x-fill-defaults: false` (the classifier's and each generator's settings) gets
    its own default ({}) but none of its properties': those are the user's overrides of a config
    dataclass, passed to rules as params, and the properties' defaults only describe the
    dataclass's. Filling them in would change the params of every classifier and generator job.
    """
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and sub.get("type") == "object" and sub.get("x-fill-defaults", True):
            _fill_defaults(config[key], sub)


def _message(error) -> str:
    """jsonschema's message, except that a misspelt key reads as the dataclasses' own check does."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        unknown = sorted(set(error.instance) - set(known))
        return f"unknown settings {unknown}; known: {sorted(known)}"
    return error.message


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Fill defaults into `config` (in place) and check it; raise PipelineError naming every bad key."""
    schema = load_schema(schema_path)
    import jsonschema  # here: merge_configs and params_hash are used where jsonschema is not installed

    _fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"config key {key}: {_message(error)}")
    url = config.get("physionet_url", "")
    if isinstance(url, str) and not url.startswith(("http://", "https://")) and not Path(url).is_dir():
        problems.append(
            f"config key physionet_url: {url!r} is neither an http(s) URL nor an existing folder"
        )
    fractions = config.get("split_fractions", {})
    if isinstance(fractions, dict) and not problems and abs(sum(fractions.values()) - 1) > 1e-6:
        problems.append(f"config key split_fractions: {fractions} must add up to 1")
    if problems:
        raise PipelineError("invalid config:\n  " + "\n  ".join(problems))
    _check_model_settings(config)
    return config


def _check_model_settings(config: dict) -> None:
    """Each generator's overrides must name fields of its config dataclass."""
    from synthecg.classifier.resnet1d import make_classifier_config
    from synthecg.generators.base import make_config  # imports torch: only once the schema passed

    try:
        make_classifier_config(config.get("classifier", {}))
    except TypeError as error:
        raise PipelineError(f"config key classifier: {error}") from None

    generators = config.get("generators", {})
    for name in generators.get("names", []):
        try:
            make_config(name, generators.get(name, {}))
        except TypeError as error:  # a value of the wrong kind for the dataclass
            raise PipelineError(f"config key generators.{name}: {error}") from None


def params_hash(params: Mapping) -> str:
    """A short, stable fingerprint of the settings a result was made with."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
