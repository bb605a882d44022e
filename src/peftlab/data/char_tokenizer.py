"""``data.tokenizer=chars``: a character-level tokenizer built offline (one token per character).

For the offline causal-LM example, whose decoder is randomly initialised: no pretrained vocabulary
is needed, and one token per digit makes "reverse 4721" or "add 12+30" learnable in minutes on a
CPU. Ids: ``<pad>`` 0, ``<s>`` 1 (put before every text), ``</s>`` 2, ``<unk>`` 3, then
:data:`CHARS` in order (:data:`VOCAB_SIZE` ids in all: a model's ``vocab_size`` must be at least this).
It is written once as a ``save_pretrained`` folder under the peftlab cache and loaded with
``AutoTokenizer.from_pretrained`` like any other tokenizer.
"""

from __future__ import annotations

import string

from peftlab.packaged_assets import cache_root, write_folder_once

NAME = "chars"
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
CHARS = string.digits + string.ascii_lowercase + string.ascii_uppercase + " +-*/=:,.?!'()"
VOCAB_SIZE = len(SPECIALS) + len(CHARS)
_VERSION = 1  # bump when the vocabulary changes: a new folder is written


def build_char_tokenizer():
    """The character-level ``PreTrainedTokenizerFast`` (see the module docstring)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIALS, *CHARS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def char_tokenizer_path() -> str:
    """The tokenizer's folder (written once into the peftlab cache; safe when processes race)."""
    folder = write_folder_once(cache_root() / f"{NAME}-v{_VERSION}", lambda tmp: build_char_tokenizer().save_pretrained(str(tmp)))
    return str(folder)
