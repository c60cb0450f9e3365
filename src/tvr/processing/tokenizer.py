"""Train a small CLIP-format BPE tokenizer (for tests, the demo and from-scratch experiments)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
WORD_END = "</w>"


def train_clip_tokenizer(
    texts: Iterable[str],
    output_dir: str | os.PathLike | None = None,
    vocab_size: int = 1024,
    model_max_length: int = 77,
) -> CLIPTokenizer:
    """Learn a byte-level BPE on ``texts`` and save it in the OpenAI CLIP layout, then load it as CLIP does.

    The vocabulary is laid out as CLIP's: the 256 byte symbols, the same with the word-end suffix ``</w>``,
    one token per learned merge, then ``<|startoftext|>`` and ``<|endoftext|>`` as the two largest ids (so the
    end-of-text id is the argmax of any tokenised sentence, which CLIP's text pooling relies on). Text is
    normalised and split exactly as ``CLIPTokenizer`` does (whitespace collapsed, lower-cased).

    Args:
        texts: training sentences.
        output_dir: folder to write ``vocab.json``, ``merges.txt`` and the tokenizer config into; ``None`` uses a
            temporary folder (the returned tokenizer keeps everything in memory).
        vocab_size: size of the vocabulary including the 514 fixed entries (fewer if ``texts`` run out of merges).
        model_max_length: maximum sequence length stored in the config (CLIP: 77).

    Returns:
        The tokenizer loaded back from ``output_dir`` with ``CLIPTokenizer.from_pretrained``.

    Example:
        >>> tokenizer = train_clip_tokenizer(["a dog runs", "a cat sleeps"])  # 12 merges: 526 tokens
        >>> tokenizer.convert_ids_to_tokens(tokenizer("a dog").input_ids)
        ['<|startoftext|>', 'a</w>', 'dog</w>', '<|endoftext|>']
        >>> tokenizer("a dog").input_ids
        [524, 320, 521, 525]
    """
    base_symbols = list(bytes_to_unicode().values())
    fixed = 2 * len(base_symbols) + 2
    if vocab_size < fixed:
        raise ValueError(f"vocab_size must be at least {fixed} (bytes, bytes + '</w>', two special tokens)")

    # train with CLIPTokenizer's own normaliser and pre-tokeniser so that training and use split text alike
    clip_pipeline = CLIPTokenizer().backend_tokenizer
    bpe = Tokenizer(models.BPE(end_of_word_suffix=WORD_END, continuing_subword_prefix=""))
    bpe.normalizer = clip_pipeline.normalizer
    bpe.pre_tokenizer = clip_pipeline.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,  # the trainer's alphabet is at most the 512 base symbols, so this suffices
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix=WORD_END,
        special_tokens=[],
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer)
    merges = json.loads(bpe.to_str())["model"]["merges"]

    tokens = base_symbols + [symbol + WORD_END for symbol in base_symbols]
    vocab = {token: index for index, token in enumerate(tokens)}
    kept_merges = []
    for left, right in merges:
        if len(vocab) >= vocab_size - 2:
            break
        kept_merges.append(f"{left} {right}")
        vocab.setdefault(left + right, len(vocab))  # two merges may build the same token
    vocab[START_OF_TEXT] = len(vocab)
    vocab[END_OF_TEXT] = len(vocab)

    if output_dir is None:
        with tempfile.TemporaryDirectory() as folder:
            return _save_and_load(vocab, kept_merges, folder, model_max_length)
    return _save_and_load(vocab, kept_merges, output_dir, model_max_length)


def _save_and_load(
    vocab: dict[str, int], merges: list[str], output_dir: str | os.PathLike, model_max_length: int
) -> CLIPTokenizer:
    """Write the OpenAI-format files and the tokenizer config, then load them as any CLIP folder is loaded."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "vocab.json"), "w", encoding="utf-8") as file:
        json.dump(vocab, file, ensure_ascii=False)
    with open(os.path.join(output_dir, "merges.txt"), "w", encoding="utf-8") as file:
        file.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    # tokenizer.json + tokenizer_config.json (class, special tokens, max length) complete the folder as in a
    # released CLIP checkpoint; vocab.json + merges.txt alone also load
    merge_pairs = [tuple(merge.split(" ")) for merge in merges]
    CLIPTokenizer(vocab=vocab, merges=merge_pairs, model_max_length=model_max_length).save_pretrained(output_dir)
    return CLIPTokenizer.from_pretrained(output_dir)


PROBE_TEXT = "a man is playing a guitar"


def check_tokenizer_fits(tokenizer, vocab_size: int, where: str | os.PathLike = "model") -> None:
    """Raise unless ``tokenizer`` can feed a text tower with ``vocab_size`` token embeddings.

    Two failures are silent otherwise: ids past the embeddings (a larger tokenizer), and a tokenizer without a
    vocabulary (e.g. the 2-entry ``CLIPTokenizer`` that ``AutoTokenizer`` makes for a folder with a CLIP config but
    no tokenizer files), which turns every caption into unknown tokens, so training runs at chance.

    Args:
        tokenizer: a tokenizer, or a processor holding one as ``.tokenizer``.
        vocab_size: the text tower's ``vocab_size``.
        where: the model or folder named in the error.
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    where = os.fspath(where)
    fix = ("use the tokenizer the model was trained with (a folder or Hub id, e.g. `--tokenizer "
           "openai/clip-vit-base-patch32` for `tvr convert`, `--processor` for `tvr eval` / `tvr index`)")
    size = len(tokenizer)
    if size > vocab_size:
        raise ValueError(f"{where}: the tokenizer has {size} tokens but the model's text tower embeds only "
                         f"{vocab_size}; {fix}")
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    known = [token for token in ids if token != tokenizer.unk_token_id and token not in tokenizer.all_special_ids]
    if not known:
        raise ValueError(f"{where}: the tokenizer ({type(tokenizer).__name__}, {size} tokens) has no vocabulary: "
                         f"every word of {PROBE_TEXT!r} is an unknown or special token, so every caption would "
                         f"read the same; {fix}")
