"""The training commands: one option per Recipe field, and the documented reproduction
commands (README.md "Training it again", docs/MODEL_CARD.md "Reproduce") name modules
that exist, with options their parsers take, and train the shipped recipe."""

from __future__ import annotations

import argparse
import json
import re
import runpy
import shlex
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from training.train import Recipe, recipe_from, recipe_parser

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "mobilenetv2-150-v5" / "card.json"  # v4's network, so v4's recipe
# runpy runs a module that its package's tests have imported already: harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")
DOCUMENTED = [(REPO / "README.md", "### Training it again"), (REPO / "docs" / "MODEL_CARD.md", "## Reproduce")]


def documented_commands(path: Path, heading: str) -> list[tuple[str, list[str]]]:
    """(module, arguments) of every ``python -m module ...`` in the code blocks under ``heading``."""
    section = path.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    level = len(heading.split(" ")[0])
    section = re.split(rf"^#{{1,{level}}} ", section, flags=re.MULTILINE)[0]
    commands = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].endswith("python") and "-m" in words:
                at = words.index("-m")
                commands.append((words[at + 1], words[at + 2 :]))
    return commands


class Parsed(Exception):
    """Raised in place of running a command once its parser has read the command line."""


def parsed(module: str, arguments: list[str], monkeypatch) -> argparse.Namespace:
    """What ``python -m module arguments`` reads its command line into; the command itself never runs."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [module, *arguments])
    with pytest.raises(Parsed) as stopped:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    return stopped.value.args[0]


def test_the_command_line_has_one_option_per_recipe_field_with_its_default():
    parser = recipe_parser()
    options = {option for action in parser._actions for option in action.option_strings}

    assert {"--" + field.name.replace("_", "-") for field in fields(Recipe)} <= options
    assert recipe_from(parser.parse_args(["--out", "run"])) == Recipe()
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "run", "--arch", "resnet"])  # choices come from the field


@pytest.mark.parametrize(("path", "heading"), DOCUMENTED, ids=["README", "MODEL_CARD"])
def test_every_reproduction_command_names_a_module_with_the_options_it_gives(path, heading, monkeypatch):
    commands = [(module, arguments) for module, arguments in documented_commands(path, heading) if module != "pytest"]

    assert any(module == "training.train" for module, _ in commands)
    for module, arguments in commands:
        parsed(module, arguments, monkeypatch)  # SystemExit (argparse's error) for an option it lacks


@pytest.mark.parametrize(("path", "heading"), DOCUMENTED, ids=["README", "MODEL_CARD"])
def test_the_documented_training_command_gives_the_shipped_versions_recipe(path, heading, monkeypatch):
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))["recipe"]
    (arguments,) = [
        arguments
        for module, arguments in documented_commands(path, heading)
        if module == "training.train" and "mobilenetv2" in arguments
    ]

    recipe = asdict(recipe_from(parsed("training.train", arguments, monkeypatch)))

    assert recipe == {
        key: tuple(value) if key == "input_size" else value for key, value in shipped.items() if key in recipe
    }


def test_the_documented_experiment_command_gives_its_options(monkeypatch):
    from training.experiments.recipe import ExperimentRecipe

    (arguments,) = [
        arguments
        for module, arguments in documented_commands(REPO / "docs" / "MODEL_CARD.md", "## Reproduce")
        if module == "training.experiments"
    ]

    recipe = recipe_from(parsed("training.experiments", arguments, monkeypatch), ExperimentRecipe)

    assert (recipe.pull_to_start, recipe.time_budget_min, recipe.logit_adjustment) == (10.0, 80.0, 1.0)
