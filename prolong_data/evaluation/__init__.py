"""Long-context evaluation of causal LMs: HELMET-style recall tasks and position-bucketed loss.

``prolong-data eval`` (``evaluation/cli.py``) generates every example locally and
deterministically with the evaluated model's own tokenizer (``evaluation/tasks/``), runs it
through a back end (``evaluation/backends/``: transformers, or vLLM when installed), scores it
(``evaluation/scoring.py``), streams results to disk so a killed run resumes
(``evaluation/runner.py``), and writes tables and plots (``evaluation/report.py``).

Of the rest of the project it imports only ``prolong_data.text`` (held-out text is normalised as the build
normalises it), never ``pipelines`` or ``trainer``; torch, transformers, vLLM and matplotlib are
imported inside the functions that need them.
"""
