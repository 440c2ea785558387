"""``margin-design app``: a local web page to design a capped margin rule by moving sliders (issue 13).

A thin adapter like the command line: :mod:`.session` wires the page's controls to the library (config loader,
exact solver, calibration, audit, report writers) and :mod:`.server` serves the page (Starlette + uvicorn, plotly.js
from the ``plotly`` package, no network). Install with ``pip install margin-design[app]``.
"""
