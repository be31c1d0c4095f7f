"""Certified accuracy, ACR and the resumable TSV log (docs/smoothing.md, Cohen et al.'s certify.py layout)."""

from pathlib import Path

import pytest

from robustlit.certify import (
    TSV_HEADER,
    CertificationRow,
    CertificationWriter,
    average_certified_radius,
    certified_accuracy,
    read_rows,
)


def test_certified_accuracy_of_a_handcrafted_list() -> None:
    radii = [0.0, 0.3, 0.6, 1.2, 0.0, 0.9]
    correct = [1, 1, 0, 1, 0, 1]  # example 4 abstained (radius 0, wrong); example 2 is wrong
    acc = certified_accuracy(radii, correct, [0.0, 0.25, 0.5, 1.0, 1.5])
    assert acc == pytest.approx([4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0])
    assert certified_accuracy(radii, correct, [0.3]) == pytest.approx([3 / 6])  # radius >= r counts
    assert average_certified_radius(radii, correct) == pytest.approx((0.3 + 1.2 + 0.9) / 6)
    with pytest.raises(ValueError):
        certified_accuracy([0.1], [1, 0], [0.0])
    with pytest.raises(ValueError):
        average_certified_radius([], [])


def _rows() -> list[CertificationRow]:
    return [
        CertificationRow(0, 3, 3, 0.5815869, 1, 17.25),
        CertificationRow(20, 8, -1, 0.0, 0, 3.5),
        CertificationRow(40, 1, 2, 0.25, 0, 3725.000001),
        CertificationRow(60, 5, 5, 1.1234567891, 1, 90061.5),
    ]


def test_tsv_round_trip_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "certify.tsv"
    with CertificationWriter(path) as writer:
        for row in _rows():
            writer.append_row(row)
    lines = path.read_text().splitlines()
    assert lines[0] == TSV_HEADER == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert lines[1] == "0\t3\t3\t0.581586\t1\t0:00:17.250000"
    assert lines[4].endswith("\t1 day, 1:01:01.500000")
    rows = read_rows(path)
    assert list(rows) == [0, 20, 40, 60]
    for original in _rows():
        back = rows[original.idx]
        assert (back.idx, back.label, back.predict, back.correct) == (
            original.idx,
            original.label,
            original.predict,
            original.correct,
        )
        assert original.radius - 1e-6 <= back.radius <= original.radius  # rounded down, never up
        assert back.time == pytest.approx(original.time, abs=1e-6)


def test_reads_the_reference_code_layout(tmp_path: Path) -> None:
    path = tmp_path / "ref.tsv"
    path.write_text(TSV_HEADER + "\n0\t3\t3\t0.582\t1\t0:00:17.123456\n20\t8\t-1\t0.0\t0\t0:00:16\n")
    rows = read_rows(path)
    assert rows[0].radius == 0.582 and rows[0].time == pytest.approx(17.123456)
    assert rows[20].predict == -1 and rows[20].time == 16.0


def test_truncated_last_line_is_ignored_and_resume_continues(tmp_path: Path) -> None:
    path = tmp_path / "certify.tsv"
    with CertificationWriter(path) as writer:
        for row in _rows()[:3]:
            writer.append_row(row)
    with path.open("a") as f:
        f.write("60\t5\t5\t1.12")  # a run stopped in the middle of a write
    assert sorted(read_rows(path)) == [0, 20, 40]
    with CertificationWriter(path, resume=True) as writer:
        assert sorted(writer.finished) == [0, 20, 40]
        todo = [row for row in _rows() if row.idx not in writer.finished]
        assert [row.idx for row in todo] == [60]
        for row in todo:
            writer.append_row(row)
    rows = read_rows(path)
    assert sorted(rows) == [0, 20, 40, 60]
    assert path.read_text().count(TSV_HEADER) == 1
    assert rows[60].radius == pytest.approx(1.123456)


def test_truncated_header_and_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "certify.tsv"
    path.write_text("idx\tla")
    with CertificationWriter(path) as writer:
        assert writer.finished == {}
        writer.append_row(_rows()[0])
    assert list(read_rows(path)) == [0]
    with CertificationWriter(path, resume=False) as writer:
        assert writer.finished == {}
    assert read_rows(path) == {}


def test_malformed_rows_and_foreign_files_raise(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(TSV_HEADER + "\n0\t3\t3\n1\t3\t3\t0.1\t1\t0:00:01\n")
    with pytest.raises(ValueError, match="line 2"):
        read_rows(path)
    path.write_text("something else\n")
    with pytest.raises(ValueError, match="header"):
        read_rows(path)
    with pytest.raises(ValueError, match="header"):
        CertificationWriter(path)
