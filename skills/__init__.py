"""Skill objectives: what makes a behaviour a skill (priors, intrinsic rewards, their own losses)."""

from skills.base import OneHotPrior, SkillObjective, UnitSpherePrior, make_prior

__all__ = ["OneHotPrior", "SkillObjective", "UnitSpherePrior", "make_prior"]
