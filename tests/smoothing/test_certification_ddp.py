"""A 2-process CPU DDP certification (gloo) reports exactly the 1-process figures (docs/contracts.md)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from smoothing_helpers import digits, trained_linear_smoothing

from robustlit.callbacks.certification import Certification
from robustlit.certify import read_rows


def _certify(model: pl.LightningModule, out: Path, devices: int) -> dict:
    callback = Certification(n0=20, n=300, failure_prob=0.001, batch_size=150, num_examples=11, output_dir=str(out))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    [metrics] = trainer.test(model, datamodule=digits())
    return metrics


def test_two_processes_report_the_single_process_figures(tmp_path: Path) -> None:
    model = trained_linear_smoothing()
    single = _certify(model, tmp_path / "one", devices=1)
    double = _certify(model, tmp_path / "two", devices=2)
    certification = {k: v for k, v in single.items() if "certified" in k or "abstain" in k}
    assert len(certification) == 7
    assert {k: double[k] for k in certification} == certification

    [one] = (tmp_path / "one").glob("certify_test_*.tsv")
    [two] = (tmp_path / "two").glob("certify_test_*.tsv")
    assert one.name == two.name
    assert not list((tmp_path / "two").glob("*.part*"))  # parts merged into the log
    rows_one, rows_two = read_rows(one), read_rows(two)
    assert list(rows_two) == list(range(11))  # every example once, sorted, no padding
    assert {i: (r.predict, r.radius) for i, r in rows_one.items()} == {
        i: (r.predict, r.radius) for i, r in rows_two.items()
    }
