"""margin-design: manipulation-proof margin schedules for CCP margin rules (Nicolai 2026, Section 6).

Subpackages: ``margin_design.calibration`` (inputs from elasticities and data), ``margin_design.design``
(the problem as data plus pure JAX functions), ``margin_design.solvers`` (certified solutions),
``margin_design.reports`` (tables, figures, files). Data flows in that order.
"""

__all__ = ["__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("margin-design")
except Exception:  # pragma: no cover - source tree without installation
    __version__ = "0+unknown"
