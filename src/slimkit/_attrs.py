"""The attribute names slimkit sets on a model, defined once.

An artifact's structure, quantization and provenance travel with the model object between
the verbs (``prune`` → ``quantize`` → ``save``) as attributes with these names.
"""

#: The architecture record ``create_model`` attaches (``{"name", "kwargs"}``).
ARCH_ATTR = "slimkit_arch"
#: The spec a loaded artifact came with (provenance, metrics).
SPEC_ATTR = "slimkit_spec"
#: The pruned structure (per-layer widths, removed blocks) ``load`` replays.
STRUCTURE_ATTR = "slimkit_structure"
#: The quantization spec section ``quantize`` attaches.
QUANT_ATTR = "slimkit_quantization"
#: What structured pruning did: groups, units removed, layers left unpruned.
PRUNE_REPORT_ATTR = "slimkit_prune_report"
