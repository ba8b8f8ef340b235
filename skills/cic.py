"""CIC: "Contrastive Intrinsic Control for Unsupervised Skill Discovery" (Laskin et al., 2022).

CIC maximises I(tau; z) = H(tau) - H(tau | z) over transitions tau = (s, s') and continuous skills
z ~ U[0, 1]^D (D = 64 in the reference; 16 here, enough for the point world). Three MLPs with
D outputs: a state encoder f, a transition head g and a skill head h (``project_skill``):

    key   k = normalize(g([f(s), f(s')]))          query q = normalize(h(z))
    s_ij  = k_i . q_j / T                           (cosine similarity, T = 0.5)

- H(tau | z) is bounded with CPC / InfoNCE, which trains f, g, h:
      L_cpc = -mean_i [ s_ii - logsumexp_j s_ij ]                  (cpc_form: paper)
  ``cpc_form: code`` is the reference code's variant, normalised over transitions for each skill,
  with the positive removed approximately and clamped:
      L_cpc = -mean_i log( exp(s_ii) / (max(sum_j exp(q_i . k_j / T) - e^{1/T}, 1e-6) + 1e-6) )
- H(tau) is estimated by particles (APT): with d_ij the distances from embedding e_i to its
  ``knn_k`` nearest neighbours e_j in the batch (itself excluded) and sigma a running standard
  deviation of such distances,
      r_ent = log(1 + mean_j max(d_ij / sigma - knn_clip, 0))

``reward_form: paper`` (default) rewards the mutual information, z-dependent, as two critic heads:
    r = [ r_ent on e = k (the transition embedding),  r_cpc = s_ii - logsumexp_j s_ij + log B ]
where r_cpc is the per-sample InfoNCE estimate of I(tau; z) (mean r_cpc = log B - L_cpc); the
learner's ``head_weights`` trade them off ([1, 0]: entropy of tau alone). ``reward_form: code`` is
the public code's single z-independent head: r_ent on e = f(s'). Differences from the reference
code, which we do not reproduce: its kNN includes each point itself (a zero distance), and it
uses DDPG where we use the loop's SAC. See reference/algos.md section 3.2 and section 10 item 7.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.networks import MLP
from algos.hparams import with_learning_rate
from skills.base import SkillObjective, UniformBoxPrior

REWARD_FORMS = ("paper", "code")
CPC_FORMS = ("paper", "code")


@dataclasses.dataclass(frozen=True)
class CICConfig:
    skill_dim: int = 16  # D: skill and embedding width (reference: 64)
    hidden: Sequence[int] = (1024, 1024)
    layer_norm: bool = False
    learning_rate: float = 1e-4
    temperature: float = 0.5
    knn_k: int = 12
    knn_clip: float = 5e-4
    project_skill: bool = True  # False: q = normalize(z)
    reward_form: str = "paper"
    cpc_form: str = "paper"


@struct.dataclass
class RunningStats:
    """Running mean and variance of a stream of numbers (Chan et al.'s parallel update)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls):  # as the reference: var 1 and a tiny count, so the first batch dominates
        return cls(jnp.zeros(()), jnp.ones(()), jnp.full((), 1e-4))

    def update(self, x):
        n, batch_mean, batch_var = x.size, jnp.mean(x), jnp.var(x)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        return RunningStats(self.mean + delta * n / total, m2 / total, total)


@struct.dataclass
class CICParams:
    nets: dict  # {"state": f, "pred": g, "skill": h}
    opt: optax.OptState
    knn_stats: RunningStats


def cpc_logits(key, query, temperature):
    """s_ij = k_i . q_j / T for L2-normalised keys and queries [B, D] -> [B, B]."""
    return key @ query.T / temperature


def cpc_loss(key, query, temperature, form: str = "paper"):
    """InfoNCE between transitions (keys) and skills (queries); see the module docstring."""
    logits = cpc_logits(key, query, temperature)
    if form == "paper":
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, -1)))
    neg = jnp.maximum(jnp.sum(jnp.exp(logits.T), -1) - jnp.exp(1.0 / temperature), 1e-6)
    return -jnp.mean(jnp.diag(logits) - jnp.log(neg + 1e-6))


def cpc_reward(key, query, temperature):
    """Per-sample InfoNCE estimate of I(tau; z): s_ii - logsumexp_j s_ij + log B. [B]."""
    logits = cpc_logits(key, query, temperature)
    return jnp.diag(jax.nn.log_softmax(logits, -1)) + jnp.log(logits.shape[0])


def knn_distances(x, k: int):
    """Distances from each row of x [B, D] to its k nearest other rows, [B, k], nearest first."""
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"knn_k={k} needs a batch of more than k transitions, got {x.shape[0]}")
    sq = jnp.sum((x[:, None] - x[None]) ** 2, -1)
    sq = jnp.where(jnp.eye(x.shape[0], dtype=bool), jnp.inf, sq)
    return jnp.sqrt(jnp.maximum(-jax.lax.top_k(-sq, k)[0], 0.0))


def knn_reward(distances, scale, clip):
    """Particle entropy reward log(1 + mean_j max(d_ij / scale - clip, 0)). [B, k] -> [B]."""
    return jnp.log1p(jnp.mean(jnp.maximum(distances / scale - clip, 0.0), -1))


class CIC(SkillObjective):
    def __init__(self, config: CICConfig, obs_size: int):
        if config.reward_form not in REWARD_FORMS:
            raise ValueError(f"unknown reward_form {config.reward_form!r}; known: {', '.join(REWARD_FORMS)}")
        if config.cpc_form not in CPC_FORMS:
            raise ValueError(f"unknown cpc_form {config.cpc_form!r}; known: {', '.join(CPC_FORMS)}")
        if config.skill_dim < 1 or config.temperature <= 0 or config.knn_k < 1:
            raise ValueError("CIC needs skill_dim >= 1, temperature > 0 and knn_k >= 1")
        self.config = config
        self.obs_size = obs_size
        self.prior = UniformBoxPrior(config.skill_dim, 0.0, 1.0)
        self.n_rewards = 2 if config.reward_form == "paper" else 1
        net = lambda: MLP(tuple(config.hidden), config.skill_dim, config.layer_norm)  # noqa: E731
        self.state_net, self.pred_net, self.skill_net = net(), net(), net()
        self.tx = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate)

    def init(self, key) -> CICParams:
        k_state, k_pred, k_skill = jax.random.split(key, 3)
        d = self.config.skill_dim
        nets = {
            "state": self.state_net.init(k_state, jnp.zeros((1, self.obs_size))),
            "pred": self.pred_net.init(k_pred, jnp.zeros((1, 2 * d))),
            "skill": self.skill_net.init(k_skill, jnp.zeros((1, d))) if self.config.project_skill else {},
        }
        return CICParams(nets, self.tx.init(nets), RunningStats.create())

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""
        return {"learning_rate": lambda p, v: p.replace(opt=with_learning_rate(p.opt, v))}

    def embed(self, nets, batch):
        """(k, q, f(s')): normalised transition and skill embeddings, and the next-state code."""
        b = batch["obs"].shape[0]
        both = self.state_net.apply(nets["state"], jnp.concatenate([batch["obs"], batch["next_obs"]], 0))
        key = self.pred_net.apply(nets["pred"], jnp.concatenate([both[:b], both[b:]], -1))
        query = self.skill_net.apply(nets["skill"], batch["skill"]) if self.config.project_skill else batch["skill"]
        normalize = lambda x: x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)  # noqa: E731
        return normalize(key), normalize(query), both[b:]

    def _particles(self, key, next_code):
        return key if self.config.reward_form == "paper" else next_code

    def reward(self, params: CICParams, batch):
        cfg = self.config
        key, query, next_code = self.embed(params.nets, batch)
        distances = knn_distances(self._particles(key, next_code), cfg.knn_k)
        entropy = knn_reward(distances, jnp.sqrt(params.knn_stats.var) + 1e-8, cfg.knn_clip)
        if cfg.reward_form == "code":
            return entropy[:, None]
        return jnp.stack([entropy, cpc_reward(key, query, cfg.temperature)], -1)

    def update(self, params: CICParams, batch, key):
        cfg = self.config

        def loss_fn(nets):
            k, q, next_code = self.embed(nets, batch)
            return cpc_loss(k, q, cfg.temperature, cfg.cpc_form), (k, q, next_code)

        (loss, (k, q, next_code)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params.nets)
        updates, opt = self.tx.update(grads, params.opt, params.nets)
        distances = knn_distances(jax.lax.stop_gradient(self._particles(k, next_code)), cfg.knn_k)
        stats = params.knn_stats.update(distances)
        params = CICParams(optax.apply_updates(params.nets, updates), opt, stats)
        accuracy = jnp.mean(jnp.argmax(cpc_logits(k, q, cfg.temperature), -1) == jnp.arange(k.shape[0]))
        return params, {"loss/cpc": loss, "cic/accuracy": accuracy, "cic/knn_distance_std": jnp.sqrt(stats.var)}
