"""User-defined workflows: the definition language, its variables, conditions and walk.

Everything here except `validation` is pure (no I/O, no clock, no randomness), so the
Temporal interpreter can import it inside `workflow.unsafe.imports_passed_through()`.
"""
