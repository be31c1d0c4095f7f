"""DRO-AT: doubly-robust instance-reweighted adversarial training (DONE, Sow et al., ICLR 2024).

The outer problem weights the per-example losses ℓ_i of PGD-AT or TRADES by the solution of a
KL-regularised DRO problem, max_{w ∈ Δ} Σ w_i ℓ_i − r KL(w ‖ uniform), i.e. w* = softmax(ℓ / r) (eq. 5).
Its value r log mean_i exp(ℓ_i / r) is a composition f(g(θ)) (eq. 6); the minibatch plug-in gradient is
biased, so a running estimate u_t of g = mean exp(ℓ / r) is kept across batches (SCGD):

    u_t = (1 − τ) u_{t−1} + τ · mean_{i∈B} exp(ℓ_i / r),   loss = (1/|B|) Σ_i ω_i ℓ_i,   ω_i = exp(ℓ_i / r) / u_t

(:class:`robustlit.losses.dro.DROWeights`). r → ∞ (``temperature: null`` or ``.inf``) gives uniform
weights, i.e. exactly plain PGD-AT / TRADES. The same weighting composes with any objective:
``PGDAT`` / ``TRADES`` with ``weighting: {class_path: robustlit.losses.DROWeights}``.

The inner attack is PGD, or (``inner_attack: log_barrier``) DONE's smoothed inner problem
max_δ ℓ(x + δ) + c Σ_k [log(ε − δ_k) + log(ε + δ_k)] (eq. 7), solved by
:func:`robustlit.attacks.log_barrier.log_barrier_attack`.

Deliberate simplification: the gradient treats x' as a constant (Danskin / first-order, as plain AT
does); DONE's implicit-differentiation correction of the hypergradient (CID, the paper's Algorithm 1) is not
implemented. The defaults r = 1, τ = 0.1, c = 1e-3 are robustlit's choices: the paper's values could not be
established (docs/reweighting.md, "What is and is not the paper's", with the reasons for each default and the
size of the omitted term).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveFloat, PositiveInt

from robustlit.attacks.log_barrier import LogBarrierThreatModel
from robustlit.losses.dro import DROWeights, RunningNormaliser
from robustlit.losses.instance_weights import WeightedTerm
from robustlit.methods.instance_reweighted import InstanceReweightedAT

InnerAttack = Literal["pgd", "log_barrier"]


class DROAdversarialTraining(InstanceReweightedAT):
    """Adversarial training whose per-example weights solve a KL-regularised DRO problem (DONE).

    Args:
        temperature: DRO temperature r > 0 (the KL weight of eq. 5; robustlit's default, the paper's value is
            not established); ``null`` or ``.inf`` (``inf`` on the command line) gives uniform weights, i.e.
            plain PGD-AT / TRADES.
        momentum: τ ∈ [0, 1] of the running normaliser u_t (1 = plug-in minibatch estimate; robustlit's default).
        normalise_weights: rescale ω to mean 1 per batch (the plug-in weights |B|·softmax(ℓ/r); the
            running estimate then no longer affects the gradient). Default: SCGD weights as they are.
        inner_attack: ``pgd`` or ``log_barrier`` (Linf only).
        barrier_weight: c ≥ 0 of the log-barrier attack (eq. 7; robustlit's default).
        barrier_tol: ``null`` (default): ``steps`` fixed sign steps, a fixed budget like the paper's loop of
            projected iterations (Algorithm 1, lines 5-7) and accurate to about one step size (docs/reweighting.md);
            > 0: solve the barrier problem to this tolerance (backtracking sign ascent, step size below tol).
        barrier_max_steps: iteration cap of the tolerance solver.
        weighted_term: ``whole`` (default: DONE weights each example's whole loss), ``robust`` (e.g. only
            the KL term of TRADES, like MAIL-TRADES) or ``natural``.
        **kwargs: see :class:`InstanceReweightedAT` (base_loss, beta, begin_epoch) and
            :class:`AdversarialTraining` (eps, step_size, steps, ...).

    Under DDP the per-example losses are all-gathered before updating u_t, so every rank keeps the
    same normaliser (the global batch is the minibatch). Logs ``train/dro/log_u`` and
    ``train/dro/omega_mean`` (the batch mean of ω: how hard this batch is relative to the running
    average) besides the weight statistics of :class:`~robustlit.methods.adversarial.AdversarialTraining`.
    """

    def __init__(
        self,
        temperature: PositiveFloat | None = 1.0,
        momentum: ClosedUnitInterval = 0.1,
        normalise_weights: bool = False,
        inner_attack: InnerAttack = "pgd",
        barrier_weight: NonNegativeFloat = 1e-3,
        weighted_term: WeightedTerm = "whole",
        barrier_tol: PositiveFloat | None = None,
        barrier_max_steps: PositiveInt = 200,
        **kwargs: Any,
    ) -> None:
        if inner_attack not in ("pgd", "log_barrier"):
            raise ValueError(f"inner_attack must be 'pgd' or 'log_barrier'; got {inner_attack!r}")
        weighting = DROWeights(
            temperature,
            momentum,
            normalise_weights,
            begin_epoch=kwargs.get("begin_epoch", 0),
            weighted_term=weighted_term,
        )
        super().__init__(**kwargs)
        self.weighting = weighting
        self.inner_attack, self.barrier_weight = inner_attack, barrier_weight
        if inner_attack == "log_barrier":
            self.threat_model = LogBarrierThreatModel(
                **asdict(self.threat_model),
                barrier_weight=barrier_weight,
                tol=barrier_tol,
                max_steps=barrier_max_steps,
            )

    @property
    def temperature(self) -> float:
        return self.weighting.temperature

    @property
    def normaliser(self) -> RunningNormaliser:
        """The running estimate u_t (a buffer of the weighting, saved in checkpoints)."""
        return self.weighting.normaliser

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # checkpoints written before the weighting became a module keep u_t under "normaliser."
        for name in ("log_u", "initialised"):
            old = f"{prefix}normaliser.{name}"
            if old in state_dict:
                state_dict[f"{prefix}weighting.normaliser.{name}"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
