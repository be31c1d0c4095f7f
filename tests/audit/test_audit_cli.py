"""The demo's test stage (audit + curve) and the audit fragment configs/eval/audit.yaml through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from harness import CONFIGS, _cap, load, shrink, write  # noqa: E402

from robustlit.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    """The demo config shrunk for CI, fitted once: (config, last checkpoint)."""
    tmp = tmp_path_factory.mktemp("demo")
    config = write(shrink(load(CONFIGS / "digits" / "trades.yaml"), tmp), tmp / "config.yaml")
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    return config, sorted(tmp.rglob("last.ckpt"))[0]


def _attacks(cli) -> dict:  # noqa: ANN001
    return json.loads((Path(cli.trainer.log_dir) / "adversarial_evaluation_test.json").read_text())["attacks"]


def test_demo_test_stage_audits_and_keeps_the_results_table_small(demo) -> None:
    config, checkpoint = demo
    cli = main(["test", "--config", str(config), "--ckpt_path", str(checkpoint)])
    rows = sorted(cli.trainer.callback_metrics)
    assert len(rows) <= 15, rows
    attacks = _attacks(cli)
    audited = {name for name, result in attacks.items() if result.get("audit")}
    # the shrunk config keeps step_size 0.01 with 3 steps (not 2.5 * eps / steps): the names say so
    assert audited == {"native_pgd3_step0.01_margin_linf_0.2", "pgd3_step0.01_linf_0.2"}, sorted(attacks)
    assert all(attacks[name]["audit"]["n"] == 8 and isinstance(attacks[name]["unreliable"], bool) for name in audited)
    curve = json.loads((Path(cli.trainer.log_dir) / "robustness_curve_test.json").read_text())
    assert list(curve) == ["native_pgd3_margin_linf"] and curve["native_pgd3_margin_linf"]["eps"] == [0.0, 0.3]
    assert (Path(cli.trainer.log_dir) / "robustness_curve_test.png").is_file()


def test_audit_fragment_audits_a_checkpoint_from_the_cli(demo, tmp_path: Path) -> None:
    config, checkpoint = demo
    fragment = yaml.safe_load((CONFIGS / "eval" / "audit.yaml").read_text())
    for callback in fragment["trainer"]["callbacks"]:
        _cap(callback["init_args"])
    path = write(fragment, tmp_path / "audit.yaml")
    cli = main(["test", "--config", str(config), "--config", str(path), "--ckpt_path", str(checkpoint)])
    attacks = _attacks(cli)
    assert {"native_pgd3_margin_linf_0.03137", "apgd3_linf_0.03137"} <= set(attacks)
    for name in ("native_pgd3_margin_linf_0.03137", "apgd3_linf_0.03137"):
        assert attacks[name]["audit"]["n"] == 8 and attacks[name]["audit"]["attack"] == name
        assert attacks[name]["unreliable"] == (not attacks[name]["audit"]["reliable"])
    assert (Path(cli.trainer.log_dir) / "robustness_curve_test.png").is_file()
