from datetime import timedelta
from pathlib import Path

import pytest

from simulator.categories import DEFAULT_MIX, Category
from simulator.scenario import (
    Scenario,
    ScenarioError,
    builtin_scenario,
    load_scenario,
    scenario_from_mapping,
    with_overrides,
)


def test_builtin_scenarios_load() -> None:
    default = builtin_scenario("default")
    assert default == Scenario()  # the shipped file spells out the model's defaults
    assert default.campaigns.mix == DEFAULT_MIX
    tiny = builtin_scenario("tiny")
    assert tiny.hours == 6
    assert tiny.start.utcoffset() == timedelta(hours=8)


def test_unknown_builtin_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match="no built-in scenario named 'huge'.*'heldout'"):
        builtin_scenario("huge")


def test_overriding_a_section_keeps_its_other_fields() -> None:
    heldout = builtin_scenario("heldout")
    changed = with_overrides(heldout, subscribers={"count": 1000}, campaigns={"count": 5})
    assert changed.subscribers.count == 1000
    assert changed.subscribers.contacts_mean == heldout.subscribers.contacts_mean
    assert changed.campaigns.count == 5
    assert changed.campaigns.mix == heldout.campaigns.mix
    assert changed.campaigns.shapes == heldout.campaigns.shapes
    # A mapping field inside a section is replaced whole, not merged.
    only = with_overrides(heldout, campaigns={"mix": {"fraud": 1}})
    assert only.campaigns.mix == {Category.FRAUD: 1}


def test_yaml_and_toml_files_load(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("seed: 3\nduration: 36h\nsubscribers:\n  count: 500\n")
    toml_file = tmp_path / "s.toml"
    toml_file.write_text(
        "seed = 3\nduration = '36h'\n[subscribers]\ncount = 500\n"
        "[campaigns.mix]\nfraud = 1.0\n"
    )
    from_yaml, from_toml = load_scenario(yaml_file), load_scenario(toml_file)
    assert from_yaml.hours == from_toml.hours == 36
    assert from_yaml.subscribers.count == from_toml.subscribers.count == 500
    assert from_toml.campaigns.mix == {Category.FRAUD: 1.0}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"subscribers": {"cont": 5}},
            r"subscribers\.cont: unknown field; allowed: count.*did you mean 'count'",
        ),
        ({"sed": 1}, r"sed: unknown field; allowed: name, seed.*did you mean 'seed'"),
        ({"seed": "abc"}, r"seed: Input should be a valid integer.*\(got 'abc'\)"),
        ({"seed": -1}, r"seed: Input should be greater than or equal to 0"),
        ({"start": "2018-07-02T00:00:00"}, r"start: needs a UTC offset"),
        ({"start": "2018-07-02T00:30:00+08:00"}, r"start: must be on the hour"),
        ({"duration": "90m"}, r"duration: must be a positive whole number of hours"),
        ({"duration": "soon"}, r"duration: "),
        ({"campaigns": {"mix": {"spam": 1}}}, r"mix\.spam.*Input should be 'finance_marketing'"),
        ({"campaigns": {"mix": {"fraud": -1}}}, r"campaigns\.mix\.fraud: .*greater than or equal"),
        ({"campaigns": {"mix": {"fraud": 0}}}, r"campaigns: mix: at least one category needs"),
        ({"complaints": {"rate": 1.5}}, r"complaints\.rate: Input should be less than or equal"),
        ({"complaints": {"noise_share": 1.0}}, r"complaints\.noise_share: must be below 1"),
        ({"output": {"rate": 0}}, r"output\.rate: Input should be greater than 0"),
        ({"subscribers": 5}, r"subscribers: Input should be a valid dictionary"),
    ],
)
def test_bad_fields_are_named_with_what_is_expected(data: dict, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        scenario_from_mapping(data, "test.yaml")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_mapping({"seed": -1, "legit": {"courier": -2}, "extra": 1}, "s.yaml")
    message = str(caught.value)
    assert message.startswith("s.yaml: 3 invalid fields")
    for field in ("seed", "legit.courier", "extra"):
        assert f"\n  {field}: " in message


def test_file_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "missing.yaml")
    json_file = tmp_path / "s.json"
    json_file.write_text("{}")
    with pytest.raises(ScenarioError, match="unknown scenario format '.json'"):
        load_scenario(json_file)
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1\n")
    with pytest.raises(ScenarioError, match="broken.yaml: not valid YAML"):
        load_scenario(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="expected a mapping of fields, got list"):
        load_scenario(listing)


def test_scenarios_are_frozen_and_overrides_revalidate() -> None:
    scenario = builtin_scenario("tiny")
    with pytest.raises(ValueError, match="frozen"):
        scenario.seed = 3  # type: ignore[misc]
    changed = with_overrides(scenario, seed=99, duration="2d")
    assert (changed.seed, changed.hours) == (99, 48)
    assert with_overrides(scenario, seed=None) == scenario
    with pytest.raises(ScenarioError, match="duration"):
        with_overrides(scenario, duration="0h")
