"""Sample generations of causal-LM tasks after validation and test, and the tokenizer for their text metrics.

At set-up the data's tokenizer is handed to every text metric of the module (ROUGE-L, chrF, BLEU
score decoded text: :func:`~peftlab.tasks.text_metrics.attach_decoder`). After each validation
(not the sanity check) and each test, the first ``samples`` rows of every causal-LM task of that
split are generated greedily (as the metrics generate them: up to the longest reference of these
rows) and written, decoded, to ``<run dir>/generations/<stage>.jsonl`` (one line per row:
``stage, epoch, step, task, prompt, generation, reference``; the file is replaced atomically each
time), and to W&B as the table ``generations/<stage>`` when a W&B logger is on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

from peftlab.checkpoints.atomic_files import write_text_atomic
from peftlab.errors import ConfigError
from peftlab.models.causal_lm_body import generate_rows, generator_of
from peftlab.models.generation import IGNORE, ignore_after_eos, prompt_batch
from peftlab.tasks.text_metrics import attach_decoder, token_text

SPLIT = {"val": "val", "test": "test"}
COLUMNS = ["stage", "epoch", "step", "task", "prompt", "generation", "reference"]


class GenerationSamples(L.Callback):
    """Write ``samples`` prompts / generations / references per causal-LM task after validation and
    test (0: none; the text metrics still get their tokenizer).

    Args:
        run_dir: the run directory (the files go to its ``generations/`` folder).
        samples: rows per task and stage.
    """

    def __init__(self, run_dir: str | Path, samples: int = 8):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ConfigError("generation_samples", f"must be a whole number >= 0 (rows per causal_lm task); got {samples!r}")
        self.folder = Path(run_dir) / "generations"
        self.samples = samples

    @staticmethod
    def tokenizer(trainer: L.Trainer) -> Any:
        """The datamodule's tokenizer, or None."""
        return getattr(getattr(trainer, "datamodule", None), "tokenizer", None)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Hand the data's tokenizer to the module's text metrics."""
        tokenizer = self.tokenizer(trainer)
        if tokenizer is not None:
            attach_decoder(pl_module, tokenizer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Samples of the validation split (not during the sanity check)."""
        if not trainer.sanity_checking:
            self.write("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Samples of the test split."""
        self.write("test", trainer, pl_module)

    def rows(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> list[dict[str, Any]]:
        """The sample rows of every causal-LM task of ``stage``'s split."""
        data, tokenizer, decoder = trainer.datamodule, self.tokenizer(trainer), generator_of(pl_module.body)
        split = getattr(data, "splits", {}).get(SPLIT[stage])
        if not self.samples or split is None or tokenizer is None or decoder is None:
            return []
        out, names = [], list(getattr(pl_module.body, "task_names", [t.name for t in pl_module.tasks]))
        for t, task in enumerate(pl_module.tasks):
            index = torch.nonzero(split.task_mask[:, t]).flatten()[: self.samples]
            if not task.task_type.generates or not len(index):
                continue
            batch = split.x.batch(index)
            labels = batch["lm_labels"].to(pl_module.device)
            pad = int(decoder.model.config.pad_token_id or 0)
            ids, mask = prompt_batch(batch["input_ids"].to(pl_module.device), batch["attention_mask"].to(pl_module.device), labels, pad)
            longest = int((labels != IGNORE).sum(1).max())
            with torch.no_grad():
                task_ids = torch.full((len(ids),), names.index(task.name), dtype=torch.long, device=ids.device)  # through this task's adapter / decoder
                generated = ignore_after_eos(generate_rows(pl_module.body, task_ids, ids, mask, longest), decoder.eos_token_id)
            for row in range(len(index)):
                out.append(
                    {
                        "stage": stage,
                        "epoch": trainer.current_epoch,
                        "step": trainer.global_step,
                        "task": task.name,
                        "prompt": tokenizer.decode(ids[row][mask[row].bool()].tolist(), skip_special_tokens=True),
                        "generation": token_text(generated[row], decoder.eos_token_id, lambda t: tokenizer.decode(t, skip_special_tokens=True)),
                        "reference": token_text(labels[row], decoder.eos_token_id, lambda t: tokenizer.decode(t, skip_special_tokens=True)),
                    }
                )
        return out

    def write(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Generate the samples (on the first process only) and write them to the file and W&B."""
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            rows = self.rows(stage, trainer, pl_module)
        finally:
            pl_module.train(was_training)
        if not rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / f"{stage}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_table(key=f"generations/{stage}", columns=COLUMNS, data=[[r[c] for c in COLUMNS] for r in rows])
