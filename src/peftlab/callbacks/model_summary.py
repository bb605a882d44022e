"""The layer table at the start of fit, without Lightning's column of zero FLOPs.

Lightning counts FLOPs only for a module with an ``example_input_array`` (peftlab's inputs vary
by data: features, token dicts), so its summary printed a FLOPs column and a "Total FLOPs" line of
zeros. ``ModelSummary`` has no option to leave them out; :class:`ParameterSummary` overrides its
public ``summarize`` hook and prints the same table without them (and with them when they count).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count


class ParameterSummary(RichModelSummary):
    """Lightning's :class:`~lightning.pytorch.callbacks.RichModelSummary` (same arguments: ``max_depth``)
    whose table leaves out FLOPs when none were counted."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        """Print the layer table and the parameter totals (FLOPs only when they were counted)."""
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs" or total_flops]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            right = name in ("Params", "Params per Device", "FLOPs", "In sizes", "Out sizes")
            table.add_column(name, justify="right" if right else "left", no_wrap=name == "Name", style="dim" if name == " " else None)
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        lines = [
            f"Trainable params: {get_human_readable_count(int(trainable_parameters)).strip()}",
            f"Non-trainable params: {get_human_readable_count(int(total_parameters - trainable_parameters)).strip()}",
            f"Total params: {get_human_readable_count(int(total_parameters)).strip()}",
            f"Total estimated model params size (MB): {get_formatted_model_size(model_size)}",
        ]
        if total_flops:
            lines.append(f"Total FLOPs: {get_human_readable_count(total_flops)}")
        console.print("\n".join(lines), highlight=False)
