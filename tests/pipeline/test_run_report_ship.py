"""The run report's LiteRT file choice: file and gzip sizes, smallest, fastest, what to ship."""

from types import SimpleNamespace

from tfimp.pipeline.report import ExportRow, LatencyRow, RunReport, _export_section, _ship_lines

EXPORTS = (ExportRow("float32", sparse=True, bytes=87_808, gzip_bytes=43_344,
                     dense_float32_bytes=1_068_672),
           ExportRow("float16", sparse=True, bytes=34_208, gzip_bytes=25_000,
                     dense_float32_bytes=1_068_672),
           ExportRow("int8", sparse=True, bytes=73_984, gzip_bytes=23_000,
                     dense_float32_bytes=1_068_672),
           ExportRow("dense_int8", sparse=False, bytes=280_576, gzip_bytes=268_327,
                     dense_float32_bytes=1_068_672))


def _report(latency: dict[str, float]):
    rows = tuple(LatencyRow(t, 1, us) for t, us in latency.items())
    rows += (LatencyRow("float16", 2, 1.0),)  # other thread counts do not count
    r = SimpleNamespace(exports=EXPORTS, latency=rows)
    r.smallest_litert = RunReport.smallest_litert.fget(r)
    return r


def test_smallest_and_fastest_files_are_named_with_file_and_gzip_size():
    lines = _ship_lines(_report({"float32": 7.3, "float16": 22.4, "int8": 18.5,
                                 "dense_int8": 3.6}))
    assert "- smallest: float16 + sparse: 34,208 B, gzip 25,000 B, 22.4 us" in lines
    assert ("- fastest: int8, dense round 0 (baseline): 280,576 B, gzip 268,327 B, 3.6 us"
            in lines)
    [ship] = [x for x in lines if x.startswith("A phone app would ship")]
    assert ship.startswith("A phone app would ship **float16 + sparse** (34,208 B in the app, "
                           "25,000 B to download)")


def test_the_dense_int8_baseline_is_listed_when_it_is_neither_smallest_nor_fastest():
    lines = _ship_lines(_report({"float32": 2.0, "float16": 22.4, "dense_int8": 3.6}))
    assert "- dense int8 baseline: int8, dense round 0 (baseline): 280,576 B, gzip 268,327 B, " \
           "3.6 us" in lines
    assert "- fastest: float32 + sparse: 87,808 B, gzip 43,344 B, 2.0 us" in lines


def test_a_slow_smallest_file_gives_way_to_the_fastest_pruned_one():
    lines = _ship_lines(_report({"float32": 900.0, "float16": 5000.0, "dense_int8": 300.0}))
    [ship] = [x for x in lines if x.startswith("A phone app would ship")]
    assert "**float32 + sparse**" in ship and "5.6x this one" in ship


def test_no_choice_without_the_smallest_files_latency():
    assert _ship_lines(_report({"float32": 7.3, "dense_int8": 3.6})) == []


def test_the_smallest_file_line_names_its_gzip_size():
    r = _report({})
    r.errors = []
    [line] = [x for x in _export_section(r) if x.startswith("Smallest verified")]
    assert "**float16 + sparse, 34,208 bytes** (gzip 25,000 bytes; 31.2x smaller" in line


def test_a_slow_smallest_file_close_to_the_fastest_pruned_one_is_still_shipped():
    lines = _ship_lines(_report({"float32": 1500.0, "float16": 2000.0, "dense_int8": 300.0}))
    [ship] = [x for x in lines if x.startswith("A phone app would ship")]
    assert "**float16 + sparse**" in ship
    assert "within 1.5x of the fastest pruned file (float32 + sparse, 1500.0 us)" in ship
