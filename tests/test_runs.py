"""The run-directory rule (imgunlearn.runs) and the command idiom (imgunlearn.command)."""

from __future__ import annotations

import pytest

from imgunlearn.command import add_option, add_output_options, command_parser, config_dict, run_command, save_config
from imgunlearn.runs import (
    COMPLETE,
    FAILED,
    RUNNING,
    RunDirectoryError,
    is_complete,
    open_run,
    prepare_run,
    read_run,
)


def _write(out, text="new", **kwargs):
    with open_run(out, command="test", config={"text": text}, **kwargs) as run:
        (run.work / "result.txt").write_text(text)
    return run


def test_new_run_is_moved_into_place_and_marked_complete(tmp_path):
    out = tmp_path / "out"
    run = _write(out)
    assert (out / "result.txt").read_text() == "new"
    assert read_run(out)["status"] == COMPLETE and run.work == out
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary sibling left


def test_existing_run_is_refused_then_replaced_with_overwrite(tmp_path):
    out = tmp_path / "out"
    _write(out, "old")
    (out / "stale.txt").write_text("from the old run")
    with pytest.raises(RunDirectoryError, match="--overwrite"):
        _write(out, "new")
    assert (out / "result.txt").read_text() == "old"
    _write(out, "new", overwrite=True)
    assert (out / "result.txt").read_text() == "new"
    assert not (out / "stale.txt").exists()


def test_failed_run_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), open_run(out, command="test", config={}) as run:
        (run.work / "half.txt").write_text("x")
        raise RuntimeError("crash")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_nothing_stale(tmp_path):
    out = tmp_path / "out"
    _write(out, "old")
    with pytest.raises(RuntimeError), open_run(out, command="test", config={}, overwrite=True):
        raise RuntimeError("crash")
    assert not is_complete(out)
    assert not (out / "result.txt").exists()


def test_foreign_directory_is_never_removed(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirectoryError, match="not an imgunlearn run"):
        _write(out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("relation", ["equal", "parent"])
def test_output_may_not_equal_or_contain_an_input(tmp_path, relation):
    source = tmp_path / "original"
    source.mkdir()
    out = source if relation == "equal" else tmp_path
    with pytest.raises(RunDirectoryError, match="input"):
        prepare_run(out, command="test", config={}, inputs=[source], overwrite=True)
    assert source.is_dir()


def test_in_place_run_resumes_only_with_the_same_configuration(tmp_path):
    out = tmp_path / "out"
    run = prepare_run(out, command="test", config={"a": 1}, in_place=True)
    assert read_run(out)["status"] == RUNNING and run.work == out
    (out / "checkpoint").write_text("step 10")
    with pytest.raises(RunDirectoryError, match="--overwrite"):
        prepare_run(out, command="test", config={"a": 1}, in_place=True)
    with pytest.raises(RunDirectoryError, match="configuration differs"):
        prepare_run(out, command="test", config={"a": 2}, resume=True)
    resumed = prepare_run(out, command="test", config={"a": 1}, resume=True)
    assert resumed.resumed and (out / "checkpoint").read_text() == "step 10"


def test_in_place_failure_is_recorded(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), open_run(out, command="test", config={}, in_place=True):
        raise KeyboardInterrupt
    record = read_run(out)
    assert record["status"] == FAILED and "KeyboardInterrupt" in record["error"]


def test_other_ranks_touch_nothing(tmp_path):
    out = tmp_path / "out"
    _write(out, "old")
    run = prepare_run(out, command="test", config={}, rank_zero=False)
    assert run.work == out and (out / "result.txt").read_text() == "old"


def _parser():
    parser = command_parser("imgunlearn t", "test command")
    add_option(parser, "num_items", type=int, default=3, help="items")
    add_output_options(parser)
    return parser


def test_command_idiom_configs_compose_and_dashes_alias(tmp_path, capsys):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("num_items: 5\nout: from_a\n")
    second.write_text("num_items: 7\n")
    seen = {}
    parser = _parser()

    def main(cfg):
        seen.update(config_dict(parser, cfg))
        save_config(parser, cfg, tmp_path)
        return 0

    assert run_command("t", parser, ["--config", str(first), "--config", str(second)], main) == 0
    assert seen["num_items"] == 7 and seen["out"] == "from_a"
    assert run_command("t", parser, ["--config", str(first), "--num-items=9"], main) == 0
    assert seen["num_items"] == 9
    assert "num_items: 9" in (tmp_path / "config.yaml").read_text()


def test_command_idiom_reports_bad_input_in_one_line(tmp_path, capsys):
    parser = _parser()
    assert run_command("t", parser, ["--out", "x", "--bogus", "1"], lambda cfg: 0) == 2
    assert "--bogus" in capsys.readouterr().err

    def main(cfg):
        raise ValueError(f"num_items must be positive, got {cfg.num_items}")

    assert run_command("t", parser, ["--out", "x", "--num_items", "-1"], main) == 2
    err = capsys.readouterr().err.strip()
    assert err == "imgunlearn t: error: num_items must be positive, got -1"


def test_print_config_prints_the_resolved_options(capsys):
    parser = _parser()
    with pytest.raises(SystemExit) as exit_info:
        run_command("t", parser, ["--out", "x", "--num_items", "4", "--print_config"], lambda cfg: 0)
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "num_items: 4" in printed and "out: x" in printed
