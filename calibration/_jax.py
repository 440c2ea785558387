"""JAX in float64 for every calibration formula (the guide: float64 where accuracy matters)."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after the precision switch)

__all__ = ["jax", "jnp"]
