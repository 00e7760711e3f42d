"""Flags from options (:mod:`lth.cli.flags`): a bool field that is a plain switch, a field with a second flag name,
a required field as argparse's required flag, and a near miss of a choice suggested from both faces."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import lth.api
from lth.cli import build_parser, main
from lth.cli.flags import add_options, options_values, typed_aliases
from lth.cli.parser import Parser
from lth.errors import UserError
from lth.options import Options, option
from lth.studies.recipe import RecipeOptions
from lth.studies.runtime import RuntimeOptions


@dataclass(frozen=True)
class _Toy(Options):
    """Every kind of flag the walk makes."""

    PREFIX: ClassVar[str] = ""
    name: str = option(help="a required name", metavar="NAME")
    fast: bool = option(False, "a plain switch", switch=True)
    strict: bool = option(False, "an optional true/false")
    out: str | None = option(None, "output folder", aliases=("-o",))
    mode: str = option("auto", "the mode", choices=("auto", "off"))
    items: tuple[str, ...] = option((), "a list", metavar="ITEM")


def _parser(required: tuple[str, ...] = ()) -> Parser:
    p = Parser(prog="toy")
    p.add_argument("word")
    add_options(p, _Toy, "toy", required=required)
    return p


def lth_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``lth`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ switch
def test_a_switch_parses_before_a_positional() -> None:
    args = _parser().parse_args(["--fast", "w", "--name", "n"])
    assert args.word == "w" and args.fast is True
    assert _Toy.from_values(options_values(args, _Toy)).fast is True
    left_out = _parser().parse_args(["w", "--name", "n"])
    assert "fast" not in vars(left_out) and _Toy.from_values(options_values(left_out, _Toy)).fast is False


def test_a_bool_field_that_is_no_switch_still_takes_true_or_false() -> None:
    p = _parser()
    assert p.parse_args(["w", "--name", "n", "--strict"]).strict == "true"
    assert p.parse_args(["w", "--name", "n", "--strict", "false"]).strict == "false"
    assert "[--fast]" in p.format_usage() and "[--strict [STRICT]]" in p.format_usage()


def test_lth_recipe_quick_before_its_name() -> None:
    args = build_parser(None).parse_args(["recipe", "--quick", "lottery"])
    options = RecipeOptions.from_values(options_values(args, RecipeOptions))
    assert (options.name, options.quick) == ("lottery", True)
    assert RecipeOptions.from_values(options_values(build_parser(None).parse_args(["recipe", "lottery"]),
                                                    RecipeOptions)).quick is False


# ------------------------------------------------------------------------------------------------ aliases
def test_an_alias_is_a_second_flag_of_the_field() -> None:
    p = _parser()
    assert p.parse_args(["w", "--name", "n", "-o", "x"]).out == "x"
    assert p.parse_args(["w", "--name", "n", "--out", "y"]).out == "y"
    assert "-o OUT, --out OUT" in p.format_help()  # short name first, as argparse shows -h, --help


def test_typed_aliases_are_the_ones_the_user_typed() -> None:
    assert typed_aliases(["report", "-o", "x"])["out"] == "-o"
    assert typed_aliases(["report", "-ox"])["out"] == "-o"
    assert typed_aliases(["report", "-o=x"])["out"] == "-o"
    assert "out" not in typed_aliases(["report", "--out", "x"])
    assert typed_aliases(["lottery", "--strategy", "global"]) == {"pruning.strategy": "--strategy"}  # ALIASES kept


@pytest.mark.parametrize("flag", ["-o", "--out"])
def test_an_error_names_the_flag_as_typed(capsys: pytest.CaptureFixture, tmp_path: Path, flag: str) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = lth_cli(capsys, "report", "--root", str(tmp_path / "store"), flag,
                             str(tmp_path / "notes.txt" / "x"))
    assert code == 2 and out == "" and err.startswith(f"lth: error: {flag} '") and err.count("\n") == 1, err


def test_lth_report_help_shows_both_names(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "-o OUT, --out OUT" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ required
def test_a_field_without_default_is_a_required_flag() -> None:
    p = _parser()
    assert "--name NAME" in p.format_usage() and "[--name NAME]" not in p.format_usage()
    with pytest.raises(UserError, match=r"^the following arguments are required: --name$"):
        p.parse_args(["w"])


def test_a_required_list_takes_at_least_one_value() -> None:
    p = _parser(required=("items",))
    assert "--items ITEM [ITEM ...]" in p.format_usage()
    with pytest.raises(UserError, match="--items"):
        p.parse_args(["w", "--name", "n", "--items"])
    assert p.parse_args(["w", "--name", "n", "--items", "a", "--items", "b"]).items == ["a", "b"]


@pytest.mark.parametrize(("argv", "missing"), [
    (["lottery", "--preset", "digits_mlp"], "--levels"),
    (["lottery"], "--preset, --levels"),
    (["branch", "reinit", "--preset", "digits_mlp"], "--levels"),
    (["hessian"], "--steps"),
])
def test_a_missing_required_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                     argv: list[str], missing: str) -> None:
    code, out, err = lth_cli(capsys, *argv, "--root", str(tmp_path / "runs"))
    assert code == 2 and out == "", err
    assert err == f"lth: error: the following arguments are required: {missing}\n"
    assert not (tmp_path / "runs").exists()


def test_lth_lottery_usage_shows_levels_required() -> None:
    sub = next(a for a in build_parser(None)._actions if isinstance(a, argparse._SubParsersAction))
    assert " --levels LEVELS " in sub.choices["lottery"].format_usage()
    assert "--steps STEP [STEP ...]" in sub.choices["hessian"].format_usage()


# ------------------------------------------------------------------------------------------------ choices
def test_a_near_miss_of_a_choice_is_suggested_in_python() -> None:
    with pytest.raises(UserError) as e:
        _Toy.from_values(name="n", mode="of")
    assert e.value.render("api") == "mode: unknown value 'of' (did you mean off?); allowed: auto, off"
    with pytest.raises(UserError) as e:
        RuntimeOptions.from_values(cuda_graph="of")
    assert e.value.render("api") == "cuda_graph: unknown value 'of' (did you mean off?); allowed: auto, off"
    assert e.value.value == "of" and e.value.allowed == "auto, off"
    with pytest.raises(UserError) as e:  # nothing near: no guess
        RuntimeOptions.from_values(cuda_graph="xyz")
    assert e.value.render("api") == "cuda_graph: unknown value 'xyz'; allowed: auto, off"


def test_a_near_miss_of_a_choice_is_suggested_through_lth_api() -> None:
    with pytest.raises(UserError) as e:
        lth.api.executor(cuda_graph="of")
    assert str(e.value) == "cuda_graph: unknown value 'of' (did you mean off?); allowed: auto, off"


def test_a_near_miss_of_a_choice_is_suggested_on_the_command_line(capsys: pytest.CaptureFixture,
                                                                  tmp_path: Path) -> None:
    code, out, err = lth_cli(capsys, "train", "--preset", "digits_mlp", "--cuda-graph", "of", "--root",
                             str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert err == "lth: error: --cuda-graph: unknown value 'of' (did you mean off?); allowed: auto, off\n"
    assert not (tmp_path / "runs").exists()
