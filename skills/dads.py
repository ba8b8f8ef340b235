"""DADS: Dynamics-Aware Unsupervised Discovery of Skills (Sharma et al., ICLR 2020).

A skill-dynamics model q(s' - s | s, z) is learnt by maximum likelihood, and skills are rewarded
for being predictable under their own z and unpredictable under other skills, a variational lower
bound on I(s'; z | s) (reference/algos.md section 1.2):

    paper form:  r = log q(s'|s,z) - log (1/L) sum_i q(s'|s,z_i),                z_i ~ p(z)
    code form:   r = log(L+1) - log(1 + sum_i exp(clip(log q(s'|s,z_i) - log q(s'|s,z), -50, 50)))

The code form (google-research/dads, ``dads_agent.py``) puts the true skill in the denominator too;
pick it with ``reward_form="code"``. Both are computed with log-sum-exp.

The skill dynamics is a mixture of ``num_components`` diagonal Gaussians over the step
Delta = s' - s, from an MLP on (normalised s, z). As in the reference code the variance is fixed
to 1 in normalised units unless ``learn_variance`` (then std = clip(softplus(.), 0.3, 10)). With
``normalize`` the input state and the target step are standardised by running moments kept in the
params (the reference uses batch-norm layers; here the moments are an exact running average until
1/(1 - normalizer_momentum) batches, then an exponential one). Log-likelihoods are reported as
densities of the raw step (the normaliser's Jacobian is added back); the reward does not depend on it.

``observation_size`` (the reference's ``--reduced_observation``) models only the leading entries of
the observation (e.g. the x-y position); ``input_omit`` (its ``observation_omit_size``) hides the
leading entries of those from the model's input, making the dynamics translation invariant.

Zero-shot goal reaching plans over skills with the learnt dynamics (the reference's MPPI
evaluation): ``goal_skill`` samples ``num_candidates`` sequences of ``planning_horizon`` skills
around the plan mean (std ``plan_std``, clipped to [-1, 1], smoothed along the horizon by
``smoothing_beta``), rolls each skill out for ``primitive_horizon`` predicted steps with the mixture
mean, scores a sequence by the summed negative distance of the predicted leading ``plan_dims``
entries to the goal's, and moves the mean to the softmax(mppi_gamma * score)-weighted candidate
average, ``refine_steps`` times. The first skill of the plan is executed. ``goal_skill`` is
stateless, so the plan is recomputed at every env step from a zero mean (receding horizon), with
noise from a key derived from the observation; the reference instead executes each planned skill for
``primitive_horizon`` env steps and carries the rest of the plan (drawn initially from N(0, I)) over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.networks import MLP
from algos.hparams import with_learning_rate
from skills.base import SkillObjective, UniformBoxPrior

REWARD_FORMS = ("paper", "code")
NORM_EPS = 1e-3  # added to the running variance, as the reference's batch norm does
STD_MIN, STD_MAX = 0.3, 10.0  # learnt std clip of the reference code (normalised units)


@dataclasses.dataclass(frozen=True)
class DADSConfig:
    skill_dim: int = 2
    hidden: Sequence[int] = (512, 512)  # reference: 2 x hidden_layer_size (512 Ant, 1024 Humanoid)
    learning_rate: float = 3e-4
    num_components: int = 4
    learn_variance: bool = False
    normalize: bool = True
    normalizer_momentum: float = 0.99
    prior_samples: int = 32  # L; the reference uses 100
    reward_form: str = "paper"  # paper | code
    observation_size: int = 0  # model only the leading entries of obs (0: all)
    input_omit: int = 0  # hide the leading entries of the modelled obs from the model's input
    # zero-shot planning over skills (MPPI)
    plan_dims: int = 2  # leading obs entries compared with the goal (the world's position_size)
    planning_horizon: int = 1
    primitive_horizon: int = 10
    num_candidates: int = 32  # reference: 50
    refine_steps: int = 4  # reference: 10
    mppi_gamma: float = 10.0
    plan_std: float = 1.2247  # sqrt(1.5): the reference's proposal covariance 1.5 I
    smoothing_beta: float = 0.9


@struct.dataclass
class Moments:
    mean: jax.Array
    var: jax.Array

    @classmethod
    def identity(cls, size: int):
        return cls(jnp.zeros((size,), jnp.float32), jnp.ones((size,), jnp.float32))

    def scale(self, enabled: bool = True):
        """(shift, scale) of the standardisation x -> (x - shift) / scale; (0, 1) when not enabled."""
        if not enabled:
            return jnp.zeros_like(self.mean), jnp.ones_like(self.var)
        return self.mean, jnp.sqrt(self.var + NORM_EPS)


@struct.dataclass
class DADSParams:
    model: dict
    model_opt: optax.OptState
    obs_moments: Moments  # of the model's input state
    delta_moments: Moments  # of the predicted step s' - s
    count: jax.Array  # transitions the moments have seen
    reward_key: jax.Array  # draws the prior samples z_i of the reward; renewed by every update


def merge_moments(moments: Moments, x, weight):
    """Moments of the mixture (1 - weight) * old + weight * batch ``x`` [B, S]."""
    mean, var = jnp.mean(x, 0), jnp.var(x, 0)
    diff = mean - moments.mean
    return Moments(
        moments.mean + weight * diff,
        (1 - weight) * moments.var + weight * var + weight * (1 - weight) * diff**2,
    )


def mixture(logits, means, stds) -> distrax.MixtureSameFamily:
    """sum_k softmax(logits)_k N(means_k, diag stds_k^2); logits [..., K], means/stds [..., K, S]."""
    return distrax.MixtureSameFamily(distrax.Categorical(logits=logits), distrax.MultivariateNormalDiag(means, stds))


def dads_reward(logp, logp_alt, form: str = "paper"):
    """DADS's intrinsic reward from log q(s'|s,z) [B] and log q(s'|s,z_i) [B, L]."""
    n = logp_alt.shape[-1]
    if form == "paper":
        return logp - (jax.nn.logsumexp(logp_alt, -1) - jnp.log(n))
    if form == "code":
        diff = jnp.clip(logp_alt - logp[:, None], -50.0, 50.0)
        with_true = jnp.concatenate([jnp.zeros_like(logp)[:, None], diff], -1)  # exp(0) = 1: the true z
        return jnp.log(n + 1.0) - jax.nn.logsumexp(with_true, -1)
    raise ValueError(f"unknown reward_form {form!r}; known: {', '.join(REWARD_FORMS)}")


class DADS(SkillObjective):
    goal_reaching = True  # MPPI planning over skills

    def __init__(self, config: DADSConfig, obs_size: int):
        c = config
        if c.reward_form not in REWARD_FORMS:
            raise ValueError(f"unknown reward_form {c.reward_form!r}; known: {', '.join(REWARD_FORMS)}")
        if c.skill_dim < 1 or c.num_components < 1 or c.prior_samples < 1:
            raise ValueError("skill_dim, num_components and prior_samples must be >= 1")
        if not 0 <= c.observation_size <= obs_size:
            raise ValueError(f"observation_size must be in [0, obs_size={obs_size}], got {c.observation_size}")
        self.state_size = c.observation_size or obs_size
        if not 0 <= c.input_omit < self.state_size:
            raise ValueError(f"input_omit must be in [0, {self.state_size}), got {c.input_omit}")
        if not 1 <= c.plan_dims <= self.state_size:
            raise ValueError(f"plan_dims must be in [1, {self.state_size}] (the modelled obs entries), got {c.plan_dims}")
        for name in ("planning_horizon", "primitive_horizon", "num_candidates", "refine_steps"):
            if getattr(c, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(c, name)}")
        if not 0.0 <= c.normalizer_momentum < 1.0:
            raise ValueError(f"normalizer_momentum must be in [0, 1), got {c.normalizer_momentum}")
        self.config = config
        self.obs_size = obs_size
        self.prior = UniformBoxPrior(c.skill_dim)
        self.input_size = self.state_size - c.input_omit
        k, s = c.num_components, self.state_size
        self.net = MLP(tuple(c.hidden), k + k * s * (2 if c.learn_variance else 1))
        self.tx = optax.inject_hyperparams(optax.adam)(learning_rate=c.learning_rate)

    def init(self, key) -> DADSParams:
        k_model, k_reward = jax.random.split(key)
        model = self.net.init(k_model, jnp.zeros((1, self.input_size + self.skill_size)))
        return DADSParams(
            model=model,
            model_opt=self.tx.init(model),
            obs_moments=Moments.identity(self.input_size),
            delta_moments=Moments.identity(self.state_size),
            count=jnp.zeros((), jnp.float32),
            reward_key=k_reward,
        )

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""
        return {"learning_rate": lambda p, v: p.replace(model_opt=with_learning_rate(p.model_opt, v))}

    # ---- the skill-dynamics model ---------------------------------------------------------------
    def state(self, obs):
        """The modelled part of the observation (``observation_size`` leading entries)."""
        return obs[..., : self.state_size]

    def distribution(self, params: DADSParams, state, skill, model=None):
        """q(normalised step | s, z) as a distrax mixture; ``state`` is the modelled obs [..., S]."""
        shift, scale = params.obs_moments.scale(self.config.normalize)
        x = (state[..., self.config.input_omit :] - shift) / scale
        out = self.net.apply(params.model if model is None else model, jnp.concatenate([x, skill], -1))
        k, s = self.config.num_components, self.state_size
        logits, rest = out[..., :k], out[..., k:].reshape(*out.shape[:-1], -1, k, s)
        means = rest[..., 0, :, :]
        if self.config.learn_variance:
            stds = jnp.clip(jax.nn.softplus(rest[..., 1, :, :]), STD_MIN, STD_MAX)
        else:
            stds = jnp.ones_like(means)
        return mixture(logits, means, stds)

    def log_prob(self, params: DADSParams, obs, next_obs, skill, model=None):
        """log q(s' - s | s, z) as a density of the raw step, [...]."""
        state = self.state(obs)
        shift, scale = params.delta_moments.scale(self.config.normalize)
        target = (self.state(next_obs) - state - shift) / scale
        return self.distribution(params, state, skill, model).log_prob(target) - jnp.sum(jnp.log(scale))

    def predict(self, params: DADSParams, state, skill):
        """The next modelled state under the mixture mean: s + E[s' - s | s, z]."""
        shift, scale = params.delta_moments.scale(self.config.normalize)
        return state + shift + scale * self.distribution(params, state, skill).mean()

    # ---- reward and update ----------------------------------------------------------------------
    def reward(self, params: DADSParams, batch) -> jax.Array:
        obs, next_obs = batch["obs"], batch["next_obs"]
        n, n_alt = obs.shape[0], self.config.prior_samples
        logp = self.log_prob(params, obs, next_obs, batch["skill"])
        alt = self.prior.sample(params.reward_key, n * n_alt).reshape(n_alt, n, self.skill_size)
        logp_alt = jax.vmap(lambda z: self.log_prob(params, obs, next_obs, z))(alt)  # [L, B]
        return dads_reward(logp, logp_alt.T, self.config.reward_form)[:, None]

    def update(self, params: DADSParams, batch, key):
        cfg = self.config
        if cfg.normalize:
            state = self.state(batch["obs"])
            n = state.shape[0]
            weight = jnp.maximum(n / (params.count + n), 1.0 - cfg.normalizer_momentum)
            params = params.replace(
                obs_moments=merge_moments(params.obs_moments, state[:, cfg.input_omit :], weight),
                delta_moments=merge_moments(params.delta_moments, self.state(batch["next_obs"]) - state, weight),
                count=params.count + n,
            )

        def loss_fn(model):
            logp = self.log_prob(params, batch["obs"], batch["next_obs"], batch["skill"], model)
            # How much the true skill helps: log q(.|s,z) - log q(.|s,z') with z' another row's skill.
            other = self.log_prob(params, batch["obs"], batch["next_obs"], jnp.roll(batch["skill"], 1, 0), model)
            return -jnp.mean(logp), jnp.mean(logp - other)

        (loss, gain), grads = jax.value_and_grad(loss_fn, has_aux=True)(params.model)
        updates, model_opt = self.tx.update(grads, params.model_opt, params.model)
        params = params.replace(model=optax.apply_updates(params.model, updates), model_opt=model_opt, reward_key=key)
        metrics = {"loss/dynamics": loss, "dads/logp": -loss, "dads/logp_gain": gain}
        return params, metrics

    # ---- zero-shot planning over skills ---------------------------------------------------------
    def goal_skill(self, params: DADSParams, obs, goal_obs):
        """MPPI over skills with the learnt skill dynamics; obs, goal_obs: [G, obs_size] -> [G, D]."""

        def first_skill(o, g):
            plan, _ = self.plan(params, o, g, _obs_key(o))
            return plan[0]

        return jax.vmap(first_skill)(obs, goal_obs)

    def plan(self, params: DADSParams, obs, goal_obs, key):
        """One observation [obs_size]: the refined plan mean [H, D] and the best candidate's score
        (summed negative predicted distance to the goal) in the last refinement."""
        cfg = self.config
        start = self.state(obs)
        goal = goal_obs[: cfg.plan_dims]

        def score(sequence):  # [H, D] -> summed negative distance of the predicted states to the goal
            def hold(state, skill):
                def step(s, _):
                    s = self.predict(params, s, skill)
                    return s, -jnp.linalg.norm(s[: cfg.plan_dims] - goal)

                state, rewards = jax.lax.scan(step, state, None, cfg.primitive_horizon)
                return state, jnp.sum(rewards)

            return jnp.sum(jax.lax.scan(hold, start, sequence)[1])

        def smooth(sequences):  # EMA along the horizon: c_h <- beta c_{h-1} + (1 - beta) c_h
            def body(prev, c):
                c = cfg.smoothing_beta * prev + (1 - cfg.smoothing_beta) * c
                return c, c

            first = sequences[:, 0]
            _, rest = jax.lax.scan(body, first, jnp.swapaxes(sequences[:, 1:], 0, 1))
            return jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], 1)

        def refine(mean, key):
            noise = cfg.plan_std * jax.random.normal(key, (cfg.num_candidates, *mean.shape))
            candidates = smooth(jnp.clip(mean + noise, self.prior.low, self.prior.high))
            scores = jax.vmap(score)(candidates)
            weights = jax.nn.softmax(cfg.mppi_gamma * scores)
            return jnp.einsum("n,nhd->hd", weights, candidates), jnp.max(scores)

        mean0 = jnp.zeros((cfg.planning_horizon, self.skill_size))
        mean, best = jax.lax.scan(refine, mean0, jax.random.split(key, cfg.refine_steps))
        return jnp.clip(mean, self.prior.low, self.prior.high), best[-1]


def _obs_key(obs):
    """A PRNG key that is a fixed function of an observation (planning noise without a key input)."""
    bits = jax.lax.bitcast_convert_type(obs.astype(jnp.float32), jnp.uint32)
    mix = jnp.arange(1, bits.size + 1, dtype=jnp.uint32) * jnp.uint32(2654435761)  # Knuth's multiplicative hash
    return jax.random.fold_in(jax.random.PRNGKey(0), jnp.sum(bits.ravel() * mix))
