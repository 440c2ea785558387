"""JAX in float64 for every calibration formula (the guide: float64 where accuracy matters)."""

from __future__ import annotations

from margin_design._runtime import configure_jax

jax = configure_jax()

import jax.numpy as jnp  # noqa: E402  (after the precision switch)

__all__ = ["jax", "jnp"]
