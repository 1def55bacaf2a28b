"""Sweeps on Ray Tune: `python -m nevis.sweep --learner=NAME --sweep=NAME`.

A sweep is declared next to the experiment it varies (`get_sweep()` in an experiments/ file;
see `nevis.sweep.spec`). Each trial is one `nevis.run` in its own run directory under the
sweep's directory, run as a process on a Ray Tune worker (`nevis.sweep.trial`); the driver
(`nevis.sweep.driver`) uses Ray Tune's Tuner, and Tuner.restore on a re-launch, which skips
finished trials and resumes interrupted ones. The sweep's table (trials.csv, trials.json) is
read by `nevis.analysis.load_sweep`.

Importing this package imports neither Ray nor JAX (trial processes start through it).
"""
