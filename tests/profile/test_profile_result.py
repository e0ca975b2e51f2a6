import pytest

from tfimp.profile import BenchResult, OpRow


def _result(**kw):
    base = dict(model="m.tflite", tool="litert", threads=2, xnnpack=False, runs=3, warmup_runs=1,
                init_us=900.0, first_us=40.0, warmup_avg_us=40.0, avg_us=11.0, median_us=10.0,
                p90_us=14.0, std_us=1.5, min_us=9.0, max_us=15.0, mem_increase_bytes=4096,
                op_summary=(OpRow("CONV_2D", 0.5, 80.0, 80.0, count=2, times_called=2),),
                op_profile=(OpRow("CONV_2D", 0.25, 40.0, 40.0, name="[c]:0", start_ms=0.0,
                                  first_ms=0.3, times_called=1),),
                raw_output="INFO: ...")
    base.update(kw)
    return BenchResult(**base)


def test_json_round_trip_keeps_every_field():
    r = _result()
    back = BenchResult.from_json(r.to_json())
    assert back == r
    assert back.op_summary[0].count == 2 and back.op_profile[0].name == "[c]:0"
    assert BenchResult.from_config(r.get_config()) == r


def test_table_shows_settings_timings_memory_and_op_types():
    text = _result().table()
    assert "threads=2" in text and "xnnpack=off" in text and "runs=3" in text
    assert "median" in text and "10.0 us" in text and "p90" in text
    assert "4.0 KiB" in text
    assert "CONV_2D" in text
    # figures a tool did not report are left out, not printed as 0
    assert "median" not in _result(median_us=None).table()


@pytest.mark.parametrize("kw, match", [
    ({"threads": 0}, "`threads` must be a positive integer. Received: threads=0"),
    ({"runs": -1}, "`runs` must be a non-negative integer"),
    ({"avg_us": float("nan")}, "`avg_us` must be a non-negative number"),
    ({"init_us": -3.0}, "Received: init_us=-3.0"),
])
def test_bad_values_are_rejected_with_the_argument_named(kw, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        _result(**kw)
