"""Evaluators: code checks and LLM judges that score traces, spans and dataset items.

The flow (docs/evaluators.md):

    evaluators.toml ──► definition (Evaluator, Rule; versions) ──► run: evaluate(evaluator, Target) → Result
                                                                     │
    online (server/evaluation_watch.py): complete traces from a durable cursor, sampled by rule
    offline (spanlake eval run): a dataset version, or past traces by filter  ──► label events
                                                                                  (source judge)
    external: the app's own gen_ai.evaluation.result events, read by the online watch from a
              cursor of their own ──► label events (source judge, author `<name>@otel`)
    alignment: judge labels against current human labels (confusion, kappa, precision/recall)

This room sits between `experiments` and `analytics`/`collector`: it reads the lake through
analytics, reuses the collector's PII detectors, and writes nothing itself (results become
label events that the server appends to its WAL, or the CLI posts to the API).
"""
