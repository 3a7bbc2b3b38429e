"""Settings typed once: the schema is the one source of every default, the settings dataclasses and config/README.md
agree with it, their refusals name the config key, and the strategy registry is what the schema and docs list."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import typing
from pathlib import Path

import pytest
import yaml

from geocontrast import registry
from geocontrast.evaluate.settings import (
    SECTIONS,
    CamSettings,
    ClusteringSettings,
    FinetuneSettings,
    GenusPairsSettings,
    KnnSettings,
    LinearSettings,
    MislabelSettings,
    section_settings,
)
from geocontrast.prior.model import PriorSettings
from geocontrast.results.compare import CompareSettings
from geocontrast.settings import Settings, merged_config
from geocontrast.train.settings import PretrainSettings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
README = (REPO / "config" / "README.md").read_text()
EVERY_SETTINGS = (
    PretrainSettings,
    LinearSettings,
    KnnSettings,
    FinetuneSettings,
    GenusPairsSettings,
    MislabelSettings,
    ClusteringSettings,
    CamSettings,
    PriorSettings,
    CompareSettings,
)
ELSEWHERE = {
    (PretrainSettings, "seed"): "pretrain.seeds.0",  # a job's seed is one of the seeds; the default the first
    (PretrainSettings, "options"): "pretrain.strategy_options",  # per strategy: the registry's defaults
    (PretrainSettings, "deterministic"): "deterministic",
    (PretrainSettings, "progress"): None,  # the job's own switch (a tqdm bar), not a config key
    (FinetuneSettings, "deterministic"): "deterministic",
}
"""The config path of a field that is not ``<section>.<field>`` (None: no config key)."""
NOT_FIELDS = {PretrainSettings: set(registry.PRETRAIN_JOB_KEYS)}
"""Keys of a settings section that choose jobs rather than configure one."""


def config_path(settings: type[Settings], name: str) -> str | None:
    return ELSEWHERE.get((settings, name), f"{settings.section}.{name}")


def schema_node(path: str) -> dict:
    """The schema of config key ``path`` (dotted); KeyError naming it when the schema has no such key."""
    node = SCHEMA
    for part in path.split("."):
        if part not in node.get("properties", {}):
            raise KeyError(path)
        node = node["properties"][part]
    return node


def schema_default(path: str):
    """The schema's default at ``path``; a trailing index (``pretrain.seeds.0``) picks an item of a list default."""
    parts = path.split(".")
    index = int(parts.pop()) if parts[-1].isdigit() else None
    default = schema_node(".".join(parts))["default"]
    return default if index is None else default[index]


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=lambda settings: settings.__name__)
def test_every_settings_default_is_the_schema_default(settings):
    for name, value in settings().as_dict().items():
        path = config_path(settings, name)
        if path is None:
            continue
        try:
            expected = schema_default(path)
        except KeyError:
            pytest.fail(f"{settings.__name__}.{name} has no default at {path} in workflow/schemas/config.schema.json")
        assert json.dumps(value) == json.dumps(expected), (
            f"{path}: {settings.__name__}.{name} defaults to {value!r}, the schema to {expected!r}; "
            "change one to match the other"
        )


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=lambda settings: settings.__name__)
def test_every_schema_key_of_a_settings_section_is_a_field(settings):
    fields = {field.name for field in dataclasses.fields(settings)}
    keys = set(schema_node(settings.section)["properties"]) - NOT_FIELDS.get(settings, set())
    missing = sorted(key for key in keys if key not in fields and config_path(settings, key))
    assert not missing, f"{settings.section}: {missing} in the schema but not fields of {settings.__name__}: add them"


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=lambda settings: settings.__name__)
def test_every_choice_of_a_field_is_the_schema_enum(settings):
    hints = typing.get_type_hints(settings)
    for field in dataclasses.fields(settings):
        path = config_path(settings, field.name)
        if typing.get_origin(hints[field.name]) is typing.Literal and path:
            choices = list(typing.get_args(hints[field.name]))
            assert schema_node(path)["enum"] == choices, f"{path}: the schema's enum is not {choices}"


def test_the_augment_recipe_defaults_are_the_schema_defaults():
    from geocontrast.train.augment import AugmentRecipe

    recipe = AugmentRecipe().as_dict()
    finetune = {**recipe, **FinetuneSettings().augment}  # crop and flip only, over the recipe
    for section, expected in (("pretrain.augment", recipe), ("evaluate.finetune.augment", finetune)):
        keys = schema_node(section)["properties"]
        assert {key: node["default"] for key, node in keys.items()} == expected, section


def test_every_evaluation_section_has_its_settings():
    sections = {spec.section for spec in (*registry.PROTOCOLS.values(), *registry.TASKS.values())}
    assert sections <= set(SECTIONS)
    assert all(f"evaluate.{section}" == settings.section for section, settings in SECTIONS.items())


def test_an_unknown_key_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"^evaluate\.linear\.epoch: unknown key; known: max_iter, penalties"):
        LinearSettings.from_mapping({"epoch": 10})
    with pytest.raises(ValueError, match=r"^pretrain\.batchsize, pretrain\.lrate: unknown keys"):
        PretrainSettings.from_mapping({"batchsize": 8, "lrate": 0.1})
    with pytest.raises(ValueError, match=r"^evaluate\.knnn: unknown section"):
        section_settings("knnn", {})


@pytest.mark.parametrize(
    ("settings", "mapping", "message"),
    [
        (LinearSettings, {"max_iter": "ten"}, "evaluate.linear.max_iter: expected an integer, got 'ten'"),
        (LinearSettings, {"max_iter": 10.0}, "evaluate.linear.max_iter: expected an integer, got 10.0"),
        (LinearSettings, {"penalties": [0.0, "a"]}, "evaluate.linear.penalties[1]: expected a number"),
        (LinearSettings, {"penalties": 0.1}, "evaluate.linear.penalties: expected a list of numbers"),
        (KnnSettings, {"temperature": True}, "evaluate.knn.temperature: expected a number, got True"),
        (PretrainSettings, {"pairs_from": "any"}, "pretrain.pairs_from: expected one of ['train', 'all'], got 'any'"),
        (PretrainSettings, {"steps_per_epoch": "5"}, "pretrain.steps_per_epoch: expected an integer or null"),
        (PretrainSettings, {"options": ["mask"]}, "pretrain.options: expected a mapping"),
        (FinetuneSettings, {"deterministic": 1}, "evaluate.finetune.deterministic: expected true or false, got 1"),
        (CamSettings, {"class_rank": 3}, "report.cam.class_rank: expected a string, got 3"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(settings, mapping, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        settings.from_mapping(mapping)


def test_settings_built_directly_are_checked_too():
    with pytest.raises(ValueError, match=r"^pretrain\.epochs: expected an integer"):
        PretrainSettings(epochs="5")


def test_the_values_given_are_kept_and_the_rest_are_defaults():
    settings = PretrainSettings.from_mapping({"lr": 1, "options": {"mask": True}, "augment": {"flip": 0.0}})
    assert settings.lr == 1 and settings.epochs == 5 and settings.options == {"mask": True}
    assert settings.as_dict()["augment"] == {"flip": 0.0}
    assert LinearSettings.from_mapping({"penalties": [0.0, 0.1]}).as_dict()["penalties"] == [0.0, 0.1]
    with pytest.raises(TypeError):
        settings.options["mask"] = False  # frozen all the way down
    assert pickle.loads(pickle.dumps(settings)) == settings  # as a process pool would pass it


def test_the_training_cli_refuses_a_bad_setting_naming_it(tmp_path, capsys):
    from geocontrast.train import __main__ as cli

    paths = ["--cache", "c.npy", "--manifest", "m.parquet", "--splits", "s.parquet", "--out-dir", str(tmp_path)]
    with pytest.raises(SystemExit):
        cli.main(["--strategy", "augmented", *paths, "--params-json", '{"epochs": "ten"}'])
    assert "pretrain.epochs: expected an integer, got 'ten'" in capsys.readouterr().err


def readme_section(heading: str) -> str:
    """The text of config/README.md's ``## heading`` section."""
    return re.search(rf"^## {heading}\n(.*?)(?=^## |\Z)", README, re.S | re.M)[1]


def readme_defaults(heading: str) -> dict[str, str]:
    """{key: default cell} of the key tables in a section; a row of several keys (`lr`, `weight_decay`) splits its
    defaults at the commas."""
    defaults = {}
    for keys, default in re.findall(r"^\| ((?:`[\w.]+`(?:, )?)+) \| (.*?) \|", readme_section(heading), re.M):
        names = re.findall(r"`([\w.]+)`", keys)
        values = [default] if len(names) == 1 else default.split(", ")
        defaults.update(zip(names, values))
    return defaults


def documented(text: str):
    return yaml.safe_load(text.strip().strip("`"))


def test_config_readme_gives_every_pretrain_default_as_the_code_has_it():
    rows = readme_defaults("pretrain")
    for name, value in PretrainSettings().as_dict().items():
        path = config_path(PretrainSettings, name)
        if path != f"pretrain.{name}" or isinstance(value, dict):
            continue
        assert name in rows, f"config/README.md's pretrain table has no row for `{name}` (default {value!r}): add one"
        assert documented(rows[name]) == value, (
            f"config/README.md gives pretrain.{name} {rows[name]}, the code {value!r}"
        )


@pytest.mark.parametrize(
    ("heading", "key", "settings"),
    [("evaluate", section, settings) for section, settings in SECTIONS.items()]
    + [("evaluate", "geoprior", PriorSettings), ("report", "cam", CamSettings)],
)
def test_config_readme_gives_every_section_default_as_the_code_has_it(heading, key, settings):
    row = readme_defaults(heading)[key]  # "max_epochs 30, patience 6, ..., augment (the recipe above)"
    given = dict(re.match(r"(\w+) (.*)", item.strip()).groups() for item in re.split(r", (?![^\[]*\])", row))
    for name, value in settings().as_dict().items():
        if config_path(settings, name) != f"{settings.section}.{name}" or isinstance(value, dict):
            continue
        assert name in given, f"config/README.md's `{key}` row does not give {name} (default {value!r}): add it"
        assert documented(given[name]) == value, (
            f"config/README.md gives {settings.section}.{name} {given[name]}, the code {value!r}"
        )


def test_the_schema_offers_exactly_the_registered_strategies():
    enum = SCHEMA["$defs"]["strategy_name"]["enum"]
    missing, extra = sorted(set(registry.STRATEGIES) - set(enum)), sorted(set(enum) - set(registry.STRATEGIES))
    assert not missing, f"add {missing} to $defs.strategy_name.enum in workflow/schemas/config.schema.json"
    assert not extra, f"{extra} in $defs.strategy_name.enum of the schema are not in geocontrast.registry.STRATEGIES"
    options = SCHEMA["properties"]["pretrain"]["properties"]["strategy_options"]["properties"]
    for name, spec in registry.STRATEGIES.items():
        assert name in options, (
            f"add pretrain.strategy_options.{name} to the schema, with the properties {sorted(spec.options)}"
        )
        section = options[name]
        section = SCHEMA["$defs"][section["$ref"].removeprefix("#/$defs/")] if "$ref" in section else section
        assert sorted(section["properties"]) == sorted(spec.options), (
            f"pretrain.strategy_options.{name} in the schema: properties {sorted(section['properties'])}, "
            f"the registry's options {sorted(spec.options)}"
        )


def readme_strategy_options() -> dict[str, str]:
    """{strategy: options cell} of config/README.md's strategy table."""
    table = re.search(
        r"^\| strategy \| positive / negatives \| loss \| options \(defaults\) \|\n(.*?)\n\n", README, re.S | re.M
    )
    return {name: options for name, options in re.findall(r"^\| `(\w+)` \|.*\| ([^|]*) \|$", table[1], re.M)}


def documented_options(rows: dict[str, str], name: str) -> dict[str, str]:
    """The option defaults a strategy's row gives, over those of the row it refers to ("as `augmented` with ...")."""
    base = re.match(r"as `(\w+)`", rows[name])
    given = documented_options(rows, base[1]) if base else {}
    return {**given, **dict(re.findall(r"`(\w+)` ([^\s,]+)", rows[name]))}


def test_config_readme_lists_every_registered_strategy_with_its_option_defaults():
    rows = readme_strategy_options()
    missing = [name for name in registry.STRATEGIES if name not in rows]
    assert not missing, f"config/README.md's strategy table has no row for {missing}: add one per strategy"
    assert not set(rows) - set(registry.STRATEGIES), f"config/README.md lists {set(rows) - set(registry.STRATEGIES)}"
    for name, spec in registry.STRATEGIES.items():
        given = documented_options(rows, name)
        for option, default in spec.options.items():
            assert option in given, f"config/README.md's `{name}` row does not give `{option}` ({default!r}): add it"
            assert documented(given[option]) == default, (
                f"config/README.md gives {name}'s `{option}` {given[option]}, the registry {default!r}"
            )


def test_a_later_config_replaces_only_the_keys_it_names_section_by_section():
    base = {"world": {"seed": 0, "taxonomy": {"n_orders": 4, "families_per_order": 2}}, "pretrain": {"seeds": [0]}}
    update = {"world": {"taxonomy": {"n_orders": 20}}, "pretrain": {"seeds": [0, 1]}}
    assert merged_config(base, update) == {
        "world": {"seed": 0, "taxonomy": {"n_orders": 20, "families_per_order": 2}},
        "pretrain": {"seeds": [0, 1]},
    }
