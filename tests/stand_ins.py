"""Stand-ins for what a user downloads: a word-level tokenizer that fits the fixtures' tiny text towers (the fixtures'
CLIP has a 320-token vocabulary, too small for a CLIP BPE), laid out as CLIP's (start / end of text the two largest
ids, so the end token is the argmax CLIP pools at)."""

from __future__ import annotations

import os
import re

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

WORDS = ("a an the man woman dog cat is are playing plays runs cooking guitar beach red blue green yellow square "
         "circle triangle moves left right up down then appears disappears and on in of with").split()


def word_tokenizer(output_dir: str | os.PathLike, vocab_size: int = 320, texts=()) -> PreTrainedTokenizerFast:
    """Save a word-level tokenizer of exactly `vocab_size` ids (the words of `WORDS` and `texts`, then fillers) to
    `output_dir` and return it; `AutoTokenizer.from_pretrained(output_dir)` loads it."""
    words = list(dict.fromkeys([*WORDS, *(w for text in texts for w in re.findall(r"\w+", text.lower()))]))
    words = words[: vocab_size - 3]
    vocab = {"<unk>": 0, **{word: index for index, word in enumerate(words, 1)}}
    vocab.update({f"<filler{index}>": index for index in range(len(vocab), vocab_size - 2)})
    vocab.update({"<|startoftext|>": vocab_size - 2, "<|endoftext|>": vocab_size - 1})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", vocab_size - 2), ("<|endoftext|>", vocab_size - 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<|startoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77)
    fast.save_pretrained(output_dir)
    return fast
