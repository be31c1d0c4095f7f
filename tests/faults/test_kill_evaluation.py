"""SIGKILL a real ``robustlit test`` during its adversarial evaluation, rerun it: the batches finished before
the kill are reused from the cache (not recomputed) and the result equals an uninterrupted evaluation's."""

from __future__ import annotations

from pathlib import Path

from fault_runs import cached_batches, evaluation_config, evaluation_result, record, run, run_and_kill, run_dir


def test_sigkill_mid_evaluation_then_rerun_reuses_finished_batches(uninterrupted: Path, tmp_path: Path) -> None:
    ckpt = str(run_dir(uninterrupted) / "checkpoints" / "last.ckpt")
    cache = tmp_path / "cache"
    args = ["test", "--config", str(evaluation_config(tmp_path, cache)), "--ckpt_path", ckpt]
    status = run_and_kill(args, tmp_path, lambda: len(cached_batches(cache)) >= 4)
    assert status == -9, f"the evaluation was not killed (exit status {status}); see {tmp_path / 'killed-run.log'}"
    finished = cached_batches(cache)
    assert 4 <= len(finished) < 34, f"{len(finished)} of 34 batches finished before the kill"

    rerun = run(args, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = cached_batches(cache)
    rewritten = [p.name for p, stamp in finished.items() if after.get(p) != stamp]

    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference = ["test", "--config", str(evaluation_config(reference_dir, reference_dir / "cache"))]
    uninterrupted_eval = run([*reference, "--ckpt_path", ckpt], reference_dir)
    assert uninterrupted_eval.returncode == 0, uninterrupted_eval.stderr[-3000:]
    got, want = evaluation_result(tmp_path), evaluation_result(reference_dir)
    robust = got["attacks"]["ensemble"]["robust_acc"]
    said = [line for line in rerun.stdout.splitlines() if "cached batches" in line]
    record(
        fault="SIGKILL during the test-stage AdversarialEvaluation (PGD-50, 34 batches of 8, `cache_dir` set)",
        happened=f"exit status {status}; {len(finished)} of 34 finished batches left in the cache",
        handled=(
            f"the rerun reused all {len(finished) - len(rewritten)} finished batches (files untouched), attacked "
            f"the other {len(after) - len(finished)}; robust accuracy {robust:.4f}, "
            f"{'equal to' if got == want else 'DIFFERENT from'} the uninterrupted evaluation's "
            f"{want['attacks']['ensemble']['robust_acc']:.4f}. The rerun printed: "
            f"`{said[0].split(' from ')[0] if said else 'nothing'}`"
        ),
    )
    assert not rewritten, f"finished batches were recomputed: {rewritten}"
    assert said and said[0].startswith(f"AdversarialEvaluation: reused {len(finished)} of 34 cached batches"), said
    assert len(after) == 34
    assert got == want, "the resumed evaluation differs from the uninterrupted one"
    assert 0 < robust < got["clean_acc"], "PGD-50 should break some, not all, of the TRADES model's predictions"
