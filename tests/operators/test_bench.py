"""``invkit bench operators`` runs on small sizes and reports every registered operator."""

from __future__ import annotations

import pytest

import invkit
from invkit.cli import main


def test_bench_operators_table(capsys):
    assert main(["bench", "operators", "--size", "8", "--batch", "2", "--repeats", "1", "--channels", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| operator")]
    assert sorted(row.split(" | ")[0][2:] for row in rows) == sorted(invkit.operators())
    sr = next(row for row in rows if row.startswith("| sr_bicubic "))
    assert "(2, 1, 8, 8) → (2, 1, 2, 2)" in sr and "closed form" in sr
    timings = [float(row.split(" | ")[3]) for row in rows if "skipped" not in row]
    assert timings and all(t >= 0 for t in timings)


def test_bench_operators_subset_and_validation(capsys):
    assert main(["bench", "operators", "--size", "8", "--batch", "1", "--repeats", "1", "--only", "denoise"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| denoise")]
    assert len(rows) == 1
    assert main(["bench", "operators", "--repeats", "0"]) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err
    assert main(["bench", "operators", "--only", "sr_bicubik"]) == 2
    assert "Did you mean 'sr_bicubic'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "operators", "--repeats", "zero"])
    assert exit_.value.code == 2
