"""Export a (pruned) checkpoint to a smaller model file.

    python scripts/export.py ckpt_path=<run dir>/checkpoints/best-*.ckpt out=model.pt [sparse=auto|true|false] [overwrite=false] [trust_remote_code=false]
    python scripts/export.py ckpt_path=<decoder run's checkpoint> out=<folder> format=hf [overwrite=false]

Masks become permanent, pruned neurons/heads are physically removed, and (sparse=auto|true)
2-D weights that are more than 55 % zeros are stored as CSR with int32 indices so the file
shrinks (sparse=false: all dense). The script checks that the exported model's outputs equal the masked model's
(max abs diff <= 1e-5) on test inputs and refuses to overwrite `out` unless overwrite=true.
Adapters the body can merge (a shared LoRA) are merged into the masked base first; a task_lora
model (one LoRA per task) is refused: export each task's adapter with
``peftlab.sharing.task_lora.export_task_adapter``.
The model is built from peftlab's own components only: the config stored in the checkpoint
supplies values, never what to import, and trust_remote_code=true (let the model folder run its
own code) is taken only from this command line.
Load the result with ``peftlab.export.load_exported(path)``.

format=hf (model=hf_causal_lm with one shared decoder): the decoder with its LM head, a shared LoRA
merged and pruned FFN units removed, as a save_pretrained folder that
``AutoModelForCausalLM.from_pretrained(out)`` loads (config intermediate_size / num_attention_heads /
num_key_value_heads adjusted; GPT-2: n_inner, and head pruning refused since its config ties the head size to
n_embd / n_head); checked
against the masked model's logits. Pruning that left layers of different widths is refused
(the default format holds any shapes); task heads are not in the folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from peftlab.errors import ConfigError  # noqa: E402
from peftlab.export import export_checkpoint, export_checkpoint_folder  # noqa: E402

USAGE = "usage: python scripts/export.py ckpt_path=<checkpoint> out=<file> [sparse=auto|true|false] [overwrite=false] [trust_remote_code=false] [format=peftlab|hf]"


def parse(argv: list[str]) -> dict[str, str]:
    """``key=value`` arguments, as Hydra-style overrides."""
    args = {}
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep or key not in ("ckpt_path", "out", "sparse", "overwrite", "tolerance", "trust_remote_code", "format"):
            raise ConfigError(key or a, f"unknown argument {a!r}; {USAGE}")
        args[key] = value
    for key in ("ckpt_path", "out"):
        if not args.get(key):
            raise ConfigError(key, f"is required; {USAGE}")
    return args


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    try:
        args = parse(argv)
        sparse = args.get("sparse", "auto")
        if sparse not in ("auto", "true", "false"):
            raise ConfigError("sparse", f"must be auto, true or false; got {sparse!r}")
        overwrite = args.get("overwrite", "false")
        if overwrite not in ("true", "false"):
            raise ConfigError("overwrite", f"must be true or false; got {overwrite!r}")
        trust = args.get("trust_remote_code", "false")
        if trust not in ("true", "false"):
            raise ConfigError("trust_remote_code", f"must be true or false; got {trust!r}")
        fmt = args.get("format", "peftlab")
        if fmt not in ("peftlab", "hf"):
            raise ConfigError("format", f"must be peftlab (a file load_exported reads) or hf (a save_pretrained folder); got {fmt!r}")
        if fmt == "hf":
            info = export_checkpoint_folder(args["ckpt_path"], args["out"], overwrite=overwrite == "true", tolerance=float(args.get("tolerance", 1e-5)), trust_remote_code=trust == "true")
            print(
                f"exported {info['out']} (AutoModelForCausalLM.from_pretrained loads it): {info['params']:,} params, intermediate_size {info['intermediate_size']}, query/key-value heads {info['heads']}, merged LoRA layers {info['merged_lora']}, removed {info['removed']}, max |diff| {info['max_abs_diff']:.2e}"
            )
            return 0
        info = export_checkpoint(args["ckpt_path"], args["out"], sparse=sparse, overwrite=overwrite == "true", tolerance=float(args.get("tolerance", 1e-5)), trust_remote_code=trust == "true")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"exported {info['out']}: params {info['params_before']:,} -> {info['params_after']:,}, "
        f"file {info['bytes_dense']:,} B (dense, masks permanent) -> {info['bytes_out']:,} B, "
        f"removed {info['removed']}, sparse={info['sparse']}, max |diff| {info['max_abs_diff']:.2e}"
    )
    semi = info.get("semi_structured")
    if semi:  # a 2:4 model: the GPU's sparse kernels timed, or why not
        print(
            f"2:4 semi-structured: {semi['layers']} layers, dense {semi['dense_ms']:.3f} ms -> {semi['semi_structured_ms']:.3f} ms (x{semi['speedup']:.2f})"
            if semi["applied"]
            else f"2:4 semi-structured: {semi['note']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
