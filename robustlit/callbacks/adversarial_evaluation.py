"""Adversarial evaluation as a Lightning callback (docs/evaluation.md; docs/contracts.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset, default_collate

from robustlit.attacks.eval_mode import check_gradients_available
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.summary_table import print_robustness_table
from robustlit.data.base import check_in_bounds
from robustlit.metrics.worst_class import (
    per_class_accuracy,
    worst_class_accuracy,
    worst_fraction_class_accuracy,
)
from robustlit.utils.distributed import gather_objects, my_batches
from robustlit.utils.fingerprint import model_fingerprint

Stage = Literal["validate", "test"]


def _dataset_of(loaders: object) -> Dataset:
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    return loader.dataset


class AdversarialEvaluation(Callback):
    """Run attacks on the first ``num_examples`` validation/test examples and log robust accuracy.

    For each attack it logs ``<stage>/robust_acc/<name><steps>_<norm>_<eps>`` (an example counts as
    robust if it is classified correctly clean *and* after the attack), the worst-class and the
    worst-``worst_fraction`` class robust accuracy, per-class robust accuracy, and
    ``<stage>/robust_acc/ensemble``: per example, robust against *every* configured attack. Clean
    accuracy on the same examples is ``<stage>/attacked_subset/clean_acc``.

    Examples are dealt to DDP ranks in whole fixed batches without padding and gathered, and each
    batch's randomness is seeded by its global index: a multi-process run reports exactly the
    single-process numbers. Attacks skip the sanity check and run every ``every_n_epochs`` epochs
    during ``fit``. With ``cache_dir`` set, finished batches are stored (keyed by a hash of the model
    weights, the attack and the batch) and skipped when the same evaluation is run again.

    Args:
        attacks: the attacks to run (each validated at parse time).
        num_examples: how many evaluation examples to attack (``None``: all).
        batch_size: attack batch size.
        every_n_epochs: frequency during ``fit``.
        stages: run at ``validate`` (incl. validation during fit) and/or ``test``.
        seed: base seed of the attacks' randomness.
        worst_fraction: fraction of classes averaged in the worst-class metric (0.3 = RA-Tail-30).
        cache_dir: directory for resumable per-batch results (``None``: no cache).
        print_table: print a rich summary table at the end of fit/validate/test (rank 0).
    """

    def __init__(
        self,
        attacks: list[AttackSpec],
        num_examples: PositiveInt | None = 1000,
        batch_size: PositiveInt = 256,
        every_n_epochs: PositiveInt = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        worst_fraction: float = 0.3,
        cache_dir: str | None = None,
        print_table: bool = True,
    ) -> None:
        if not attacks:
            raise ValueError("AdversarialEvaluation needs at least one attack")
        names = [a.metric_name for a in attacks]
        if len(set(names)) != len(names):
            raise ValueError(f"AdversarialEvaluation: duplicate attacks {names}")
        if not 0 < worst_fraction <= 1:
            raise ValueError(f"worst_fraction must lie in (0, 1]; got {worst_fraction}")
        self.attacks = list(attacks)
        self.num_examples, self.batch_size, self.every_n_epochs = num_examples, batch_size, every_n_epochs
        self.stages = set(stages or ["validate", "test"])
        self.seed, self.worst_fraction = seed, worst_fraction
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.print_table = print_table
        self.results: dict[str, dict] = {}

    # ---- hooks -----------------------------------------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" in self.stages and not trainer.sanity_checking:
            check_gradients_available()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            check_gradients_available()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" not in self.stages or trainer.sanity_checking:
            return
        if trainer.state.fn == "fit":
            last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
            if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not last_epoch:
                return
        self._run(trainer, pl_module, "val", _dataset_of(trainer.val_dataloaders))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._run(trainer, pl_module, "test", _dataset_of(trainer.test_dataloaders))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print("val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("test")

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, dataset: Dataset, num_classes: int, bounds, device) -> dict:  # noqa: ANN001
        """Attack the first ``num_examples`` of ``dataset``; returns the gathered summary (all ranks)."""
        check_gradients_available()
        n = len(dataset) if self.num_examples is None else min(self.num_examples, len(dataset))
        attacks = [build_attack(s, model, num_classes, bounds, self.batch_size) for s in self.attacks]
        cache = self._cache_root(model, n)
        local = []
        for batch_id, indices in my_batches(n, self.batch_size):
            local.append(self._batch(model, dataset, attacks, batch_id, indices, bounds, device, cache))
        rows = [row for part in gather_objects(local) for row in part]
        return self._summarise(rows, n, num_classes)

    def _cache_root(self, model: torch.nn.Module, n: int) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"model-{model_fingerprint(model)}" / f"n{n}-bs{self.batch_size}-seed{self.seed}"

    def _batch(self, model, dataset, attacks, batch_id, indices, bounds, device, cache) -> dict:  # noqa: ANN001
        x, y = default_collate([dataset[i] for i in indices])[:2]
        x, y = x.to(device), y.to(device)
        check_in_bounds(x, bounds, "AdversarialEvaluation")
        with torch.no_grad():
            clean = model(x).argmax(dim=1) == y
        robust = []
        for k, (spec, attack) in enumerate(zip(self.attacks, attacks, strict=True)):
            path = cache / spec.metric_name / f"batch{batch_id:06d}.pt" if cache else None
            if path is not None and path.exists():
                robust.append(torch.load(path).to(device))
                continue
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed + 100_003 * batch_id + 7919 * k)
                x_adv = attack(x, y)
            with torch.no_grad():
                ok = clean & (model(x_adv).argmax(dim=1) == y)
            robust.append(ok)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(ok.cpu(), path.with_suffix(".tmp"))
                path.with_suffix(".tmp").replace(path)
        return {
            "index": torch.tensor(indices),
            "label": y.cpu(),
            "clean": clean.cpu(),
            "robust": torch.stack(robust, dim=1).cpu(),
        }

    def _summarise(self, rows: list[dict], n: int, num_classes: int) -> dict:
        index = torch.cat([r["index"] for r in rows])
        order = index.argsort()
        if not torch.equal(index[order], torch.arange(n)):
            raise RuntimeError("AdversarialEvaluation: gathered examples are not exactly 0..n-1 once each")
        label = torch.cat([r["label"] for r in rows])[order]
        clean = torch.cat([r["clean"] for r in rows])[order]
        robust = torch.cat([r["robust"] for r in rows])[order]
        summary = {
            "num_examples": n,
            "clean_acc": clean.float().mean().item(),
            "worst_fraction": self.worst_fraction,
            "attacks": {},
        }
        columns = [(s.metric_name, robust[:, k], asdict(s)) for k, s in enumerate(self.attacks)]
        columns.append(
            ("ensemble", robust.all(dim=1), {"name": "ensemble", "of": [s.metric_name for s in self.attacks]})
        )
        for name, ok, spec in columns:
            per_class = per_class_accuracy(ok, label, num_classes)
            summary["attacks"][name] = {
                "spec": spec,
                "robust_acc": ok.float().mean().item(),
                "worst_class_robust_acc": worst_class_accuracy(per_class).item(),
                "worst_fraction_robust_acc": worst_fraction_class_accuracy(per_class, self.worst_fraction).item(),
                "per_class_robust_acc": per_class.tolist(),
            }
        return summary

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, dataset: Dataset) -> None:
        model = pl_module.classifier
        summary = self.evaluate(model, dataset, pl_module.num_classes, pl_module.bounds, pl_module.device)
        summary["epoch"] = trainer.current_epoch
        self.results[stage] = summary
        tail = f"worst{round(100 * self.worst_fraction)}pct_class_robust_acc"
        log = {f"{stage}/attacked_subset/clean_acc": summary["clean_acc"]}
        for name, res in summary["attacks"].items():
            log[f"{stage}/robust_acc/{name}"] = res["robust_acc"]
            log[f"{stage}/worst_class_robust_acc/{name}"] = res["worst_class_robust_acc"]
            log[f"{stage}/{tail}/{name}"] = res["worst_fraction_robust_acc"]
            for k, acc in enumerate(res["per_class_robust_acc"]):
                if acc == acc:  # skip classes absent from the subset (NaN)
                    log[f"{stage}/per_class_robust_acc/{name}/class_{k}"] = acc
        pl_module.log_dict(log, on_step=False, on_epoch=True, sync_dist=True)
        self._write_json(trainer.log_dir, stage, summary)  # log_dir is a collective: read it on every rank

    @rank_zero_only
    def _write_json(self, log_dir: str | None, stage: str, summary: dict) -> None:
        if log_dir is None:
            return
        path = Path(log_dir) / f"adversarial_evaluation_{stage}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))

    @rank_zero_only
    def _print(self, stage: str) -> None:
        if self.print_table and stage in self.results:
            print_robustness_table(self.results[stage], title=f"{stage}: adversarial evaluation")

    @property
    def state_key(self) -> str:
        """Unique per configuration, so several instances (e.g. one per stage) can be checkpointed."""
        return self._generate_state_key(stages=sorted(self.stages), attacks=[a.metric_name for a in self.attacks])

    def state_dict(self) -> dict:
        return {"results": self.results}

    def load_state_dict(self, state_dict: dict) -> None:
        self.results = state_dict.get("results", {})
