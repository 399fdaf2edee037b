"""The video tool's pure parts: how modes plan their calls, crops, schedules and parameter options."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdvideo.frames_in import InputError, check_croppable, crop_box
from sdvideo.options import OptionError, gather_params, parse_param
from sdvideo.plan import NO_OUTPUT, CanvasPlan, RealtimePlan
from sdvideo.progress import Progress
from sdvideo.schedule import ScheduleError, load_schedule, parse_schedule


@pytest.mark.parametrize("total", [1, 5, 23, 24, 25, 100])
@pytest.mark.parametrize(("segment", "warmup", "lag"), [(24, 8, 1), (10, 0, 1), (7, 3, 3), (1, 2, 0)])
def test_realtime_keeps_every_frame_once_from_the_call_lag_frames_later(
    total: int, segment: int, warmup: int, lag: int
) -> None:
    units = list(RealtimePlan(segment, warmup, lag).units(total))
    kept = [index for unit in units for index in unit.kept]
    assert kept == list(range(total))
    for unit in units:
        assert unit.sequence
        for position, output in enumerate(unit.outputs):
            if output != NO_OUTPUT:  # the answer to a call is the frame sent `lag` calls earlier
                assert unit.inputs[position - lag] == output
        targets = [unit.target_of_input(position, lag) for position in range(len(unit.inputs))]
        assert [t for t in targets if t != NO_OUTPUT] == unit.kept  # what each input sent becomes
        first_kept = unit.outputs.index(unit.kept[0])
        assert first_kept >= min(lag + warmup, lag + unit.kept[0])  # warm-up before the segment's first frame
        assert all(0 <= index < total for index in unit.inputs)


def test_canvas_sends_each_frame_once_on_its_own() -> None:
    units = list(CanvasPlan().units(4))
    assert [(u.inputs, u.outputs, u.sequence) for u in units] == [((i,), (i,), False) for i in range(4)]


@pytest.mark.parametrize(
    ("size", "target", "box"),
    [
        ((192, 144), (128, 128), (24, 0, 168, 144)),
        ((100, 300), (128, 128), (0, 100, 100, 200)),
        ((640, 360), (128, 64), (0, 20, 640, 340)),
        ((128, 128), (128, 128), (0, 0, 128, 128)),
    ],
)
def test_frames_are_centre_cropped_to_the_models_aspect(size, target, box) -> None:
    assert crop_box(*size, *target) == box


def test_a_sliver_cannot_be_cropped() -> None:
    with pytest.raises(InputError, match=r"clip.mp4: a 400x10 frame cannot be cropped to the model's 128x128"):
        check_croppable("clip.mp4", 400, 10, 128, 128)


def test_a_schedule_maps_times_to_prompts() -> None:
    schedule = parse_schedule({"2.5": "b", 0: "a", "10": "c"}, "s.yaml")
    assert [schedule.prompt_at(t, "default") for t in (0, 2.4, 2.5, 9.99, 11)] == ["a", "a", "b", "b", "c"]
    late = parse_schedule([{"time": 1, "prompt": "x"}], "s.json")
    assert late.prompt_at(0.5, "default") == "default"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "names no prompt"),
        ({"soon": "a"}, "'soon' is no time in seconds"),
        ({"-1": "a"}, "must be zero or more"),
        ({"1": ""}, "non-empty text"),
        ({"1": "a", "1.0": "b"}, "two prompts at 1.0 s"),
        ([{"at": 1, "prompt": "a"}], "entry 0 must be"),
        ("a prompt", "maps times in seconds to prompts"),
    ],
)
def test_bad_schedules_name_the_file_and_the_entry(data, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason) as error:
        parse_schedule(data, "prompts.yaml")
    assert "prompts.yaml" in str(error.value)


def test_a_schedule_file_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.yaml"
    bad.write_text("0: [unclosed\n")
    with pytest.raises(ScheduleError, match="not valid YAML"):
        load_schedule(bad)


def test_parameter_options_read_like_the_pages_fields(tmp_path: Path) -> None:
    assert parse_param("seed=7") == ("seed", "7")
    assert parse_param("t_index_list=[30, 40]") == ("t_index_list", [30, 40])
    file = tmp_path / "params.json"
    file.write_text('{"seed": 1, "prompt": "from the file", "delta": 0.5}')
    assert gather_params(file, ["seed=2"], "from the flag") == {"seed": "2", "prompt": "from the flag", "delta": 0.5}
    with pytest.raises(OptionError, match="write key=value"):
        parse_param("seed")
    with pytest.raises(OptionError, match="not valid JSON"):
        parse_param("t_index_list=[30,")


def test_progress_counts_frames_a_resumed_job_found_apart_from_those_it_made() -> None:
    progress = Progress(total=10, done=4)
    progress.advance(False, 0.1)
    progress.advance(True, 0.5)
    progress.advance(True, 1.0)
    assert (progress.done, progress.computed, progress.fps, progress.first_frame_s) == (6, 2, 2.0, 0.5)
    assert progress.eta_s == 2.0
