"""The embedded demo: its seed model (``builtin:arithmetic``, see ``seed_model``) and the small
locally built models it and the tests use (``tinymodel``). The driver knows none of this: the
seed model is a registered built-in model, the arithmetic task a registered adapter."""
