"""The prediction recipe: a trained model's per-task predictions for new inputs.

``python predict.py ckpt_path=<checkpoint or export> input=<file>`` (or ``texts='[...]'``) writes
one row per input: the input, then for each task its prediction — a classification task's label
(its class name when the data config declares ``classes``) and the probability of every class,
a regression task's value (labels are never rescaled in training, so this is the original scale).
A causal-LM model (``model=hf_causal_lm``) writes each prompt's greedy generation instead
(``max_new_tokens`` tokens at most, see :mod:`~peftlab.generate_text`). ``ckpt_path`` may also be
a run directory: the checkpoint its ``metrics.json`` names, else its ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from peftlab.batch import slice_inputs
from peftlab.errors import ConfigError
from peftlab.generate_text import ChatPrompt, generation_rows, new_tokens
from peftlab.inference import InferenceModel, load_for_inference
from peftlab.validators import check_choice, check_int

#: Output formats by suffix.
OUTPUT_FORMATS = (".csv", ".jsonl")


def read_texts(path: str, column: str = "text", turns: bool = False) -> tuple[list[Any], list[str | None] | None]:
    """Texts (and second texts, from a ``text_pair`` column when the file has one) of a CSV / TSV /
    JSON-lines / parquet file, or one text per line of a ``.txt`` file (``turns``: a cell holding a
    list, a conversation, is kept as it is)."""
    file = Path(path).absolute()
    if file.suffix.lower() == ".txt":
        if not file.is_file():
            raise ConfigError("input", f"{file}: no such file")
        return [line for line in file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()], None
    from peftlab.data.text_files import read_frame

    try:
        frame = read_frame(file)
    except ConfigError as err:
        raise ConfigError("input", str(err)) from None
    if column not in frame.columns:
        raise ConfigError("input_column", f"{file} has no column {column!r}; columns: {[str(c) for c in frame.columns]}")
    texts = [v if turns and is_turn_list(v) else "" if v is None else str(v) for v in frame[column].tolist()]
    pairs = [None if v is None else str(v) for v in frame["text_pair"].tolist()] if "text_pair" in frame.columns else None
    return texts, pairs


def is_turn_list(value: Any) -> bool:
    """Whether a cell holds a list (a JSON-lines / parquet conversation), not a text."""
    return isinstance(value, list) or (hasattr(value, "tolist") and not isinstance(value, str) and getattr(value, "ndim", 0) == 1)


def chat_prompts(model: InferenceModel, cells: list[Any], chat_template: str) -> list[str | ChatPrompt]:
    """Cells that hold conversations (lists of ``{role, content}`` turns, as JSON lines give them) as
    :class:`~peftlab.generate_text.ChatPrompt` s rendered with ``chat_template`` as training renders
    chats, plus the assistant's generation prompt; text cells unchanged. Mixed cells, a turn that is
    not ``{role, content}`` or a conversation ending with the assistant's turn: one line."""
    chats = [is_turn_list(c) for c in cells]
    if not any(chats):
        return cells
    if not all(chats):
        raise ConfigError("input_column", "holds both texts and conversations: give one kind per file (conversations as lists of {role, content} turns in JSON lines)")
    from peftlab.data.chat_rows import conversation
    from peftlab.data.tokenize_chat import generation_prompt_ids, template_for

    template = template_for(model.tokenizer, chat_template, "chat_template")
    turns = [conversation(c, f"input row {i + 1}", "input_column", answered=False) for i, c in enumerate(cells)]
    return [ChatPrompt(json.dumps(t, ensure_ascii=False), generation_prompt_ids(t, model.tokenizer, template, "chat_template")) for t in turns]


def read_features(path: str, input_shape: Sequence[int] | None) -> torch.Tensor:
    """Feature rows of a CSV / TSV / JSON-lines / parquet file (every column a number), shaped like
    the training samples (``data.input_shape``)."""
    from peftlab.data.text_files import read_frame

    file = Path(path).absolute()
    try:
        frame = read_frame(file)
    except ConfigError as err:
        raise ConfigError("input", str(err)) from None
    try:
        values = torch.tensor(frame.astype(float).to_numpy(), dtype=torch.float32)
    except (TypeError, ValueError):
        raise ConfigError("input", f"{file}: every column must hold numbers (this model reads feature vectors, not texts)") from None
    width = int(torch.tensor(input_shape).prod()) if input_shape else values.shape[1]
    if values.shape[1] != width:
        raise ConfigError("input", f"{file}: rows have {values.shape[1]} values but the model reads {width} (data.input_shape={list(input_shape or [])})")
    return values.reshape(len(values), *(input_shape or [width]))


@torch.no_grad()
def predict_outputs(model: InferenceModel, inputs: Any, batch_size: int = 64, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Every task's head output for every row of ``inputs`` (a feature tensor, or texts as ``(texts, pairs)``), in batches."""
    n = len(inputs[0]) if model.reads_text else len(inputs)
    outputs: dict[str, list[torch.Tensor]] = {t.name: [] for t in model.tasks}
    model.to(device)
    for start in range(0, n, batch_size):
        if model.reads_text:
            texts, pairs = inputs
            batch = model.encode(texts[start : start + batch_size], pairs[start : start + batch_size] if pairs else None)
            batch = {k: v.to(device) for k, v in batch.items()}
        else:
            batch = slice_inputs(inputs, slice(start, start + batch_size)).to(device)
        for name, value in model(batch).items():
            outputs[name].append(value.float().cpu())
    return {name: torch.cat(parts) if parts else torch.empty(0) for name, parts in outputs.items()}


def prediction_rows(model: InferenceModel, outputs: dict[str, torch.Tensor], texts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One record per input: its text (text models), then per task the label and class
    probabilities (``<task>_prob_<class>``) or the regression value."""
    n = len(next(iter(outputs.values())))
    rows: list[dict[str, Any]] = [{"text": texts[i]} if texts is not None else {"row": i} for i in range(n)]
    for task in model.tasks:
        out = outputs[task.name]
        if task.type == "regression":
            for i, value in enumerate(out.squeeze(-1).tolist()):
                rows[i][task.name] = value
            continue
        names = model.classes.get(task.name) or [str(c) for c in range(out.shape[-1])]
        probs = out.softmax(-1)
        for i, (label, p) in enumerate(zip(out.argmax(-1).tolist(), probs.tolist())):
            rows[i][task.name] = names[label]
            rows[i].update({f"{task.name}_prob_{c}": round(v, 6) for c, v in zip(names, p)})
    return rows


def write_predictions(rows: list[dict[str, Any]], output: str | Path) -> Path:
    """Write ``rows`` as CSV or JSON lines (by the suffix of ``output``)."""
    out = Path(output).absolute()
    check_choice("output", out.suffix.lower(), OUTPUT_FORMATS)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".jsonl":
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        import pandas as pd  # quoting of commas, quotes and newlines in texts

        pd.DataFrame(rows).to_csv(out, index=False)
    return out


def resolve_device(device: str) -> str:
    """``auto``: cuda when available, else cpu; any other value is passed to torch as given."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict ``cfg.input`` (a file) or ``cfg.texts`` (a list) with ``cfg.ckpt_path``; write ``cfg.output``."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path", "required: a checkpoint (<run dir>/checkpoints/<file>.ckpt) or a file written by scripts/export.py")
    if bool(cfg.get("input")) == bool(cfg.get("texts")):
        raise ConfigError("input", 'give exactly one of input=<file> (CSV/TSV/JSONL/parquet/TXT) or texts=\'["first text","second"]\'')
    batch_size = check_int("batch_size", cfg.batch_size, minimum=1)
    from peftlab.evaluate import trust_remote_code_from  # the same rule as eval.py: only from this command line

    model = load_for_inference(str(cfg.ckpt_path), trust_remote_code=trust_remote_code_from(cfg))
    max_new_tokens = new_tokens(model, cfg.get("max_new_tokens"))
    if max_new_tokens:
        prompts = list(map(str, cfg.texts)) if cfg.get("texts") else read_texts(str(cfg.input), str(cfg.input_column), turns=True)[0]
        prompts = chat_prompts(model, prompts, str(cfg.get("chat_template", "auto")))
        rows = generation_rows(model, prompts, max_new_tokens, batch_size, resolve_device(str(cfg.device)))
        out = write_predictions(rows, cfg.output)
        print(f"generations: {len(rows)} prompts -> {out}")
        return {"output": str(out), "rows": len(rows), "tasks": [t.name for t in model.tasks]}
    texts = None
    if model.reads_text:
        texts, pairs = (list(map(str, cfg.texts)), None) if cfg.get("texts") else read_texts(str(cfg.input), str(cfg.input_column))
        inputs: Any = (texts, pairs)
    elif cfg.get("texts"):
        raise ConfigError("texts", "this model reads feature vectors, not texts; pass input=<CSV of numbers>")
    else:
        inputs = read_features(str(cfg.input), model.input_shape)
    outputs = predict_outputs(model, inputs, batch_size, resolve_device(str(cfg.device)))
    rows = prediction_rows(model, outputs, texts)
    out = write_predictions(rows, cfg.output)
    print(f"predictions: {len(rows)} rows x {len(model.tasks)} tasks -> {out}")
    return {"output": str(out), "rows": len(rows), "tasks": [t.name for t in model.tasks]}
