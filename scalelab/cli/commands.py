"""Every command: the module under ``scalelab.cli`` that declares it, and the first sentence of its
help. `scalelab --help` lists the commands from this table, so listing them loads none of their
modules; a command's module is imported when that command runs (``cli.app``'s group). A new
command is a module with ``@app.command()`` and a row here (tests/test_cli_commands.py checks that
the two agree)."""

#: name -> (module, the command's one-line help), in the order `scalelab --help` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "Published top-1 accuracies, the scaling-law estimator's validation, or an estimate "
                             "for a scaled spec."),
    "analyze": ("analyze", "Per-block parameters, MACs, other ops and activation sizes of a network, with totals."),
    "calibrate": ("calibrate", "Measure this machine and write a device profile usable with `analyze --device FILE`."),
    "compare": ("compare", "Params, MACs, other ops, inference and training memory, predicted latency and published "
                           "top-1 of several networks side by side, each as a multiple of the first's too."),
    "devices": ("devices", "List the device profiles usable with `analyze --device` (or check one profile file)."),
    "explain": ("explain", "Show the MACs and parameter arithmetic of every conv and linear layer with exact integers."),
    "kinds": ("kinds", "List the block kinds with a one-line summary and their parameters (type, default, meaning)."),
    "plot": ("plot", "Charts."),
    "scale": ("scale", "Search the best compound scaling of a network under a budget, or apply one scaling."),
    "schema": ("schema", "Print the JSON Schema (draft 2020-12) of a network spec."),
    "zoo": ("zoo", "List the zoo specs (usable by name anywhere a spec is expected) with params and MACs."),
    "import": ("import_cmd", "Import a PyTorch module as a spec: captured with torch.export in eval mode, each ATen "
                             "operator mapped to a block (conv + batchnorm + activation, add, concat, squeeze-excite, "
                             "tensor operations, ...), named by the module's qualified names."),
    "verify": ("verify", "Build the spec's torch module and cross-check every block's output shape, the parameters "
                         "(torch), and the MACs (FlopCounterMode, fvcore's conv and linear counts)."),
}
