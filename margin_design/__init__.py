"""margin-design: manipulation-proof margin schedules for CCP margin rules (Nicolai 2026, Section 6).

Subpackages: ``margin_design.calibration`` (inputs from elasticities and data), ``margin_design.design``
(the problem as data plus pure JAX functions), ``margin_design.solvers`` (certified solutions),
``margin_design.reports`` (tables, figures, files). Data flows in that order.
"""

__all__ = ["__version__"]


def __getattr__(name: str):
    # The version is read from the installed metadata on first use: importlib.metadata costs about 30 ms,
    # a tenth of a command that needs no solve.
    if name == "__version__":
        try:
            from importlib.metadata import version

            value = version("margin-design")
        except Exception:  # pragma: no cover - source tree without installation
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'margin_design' has no attribute {name!r}")
