"""Small models built locally: a character-level tokenizer trained with ``tokenizers`` and a
tiny Llama, saved with ``save_pretrained`` so both sampler backends (vLLM, transformers) and TRL
load them like any Hugging Face checkpoint. Used by the demo and by the tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% else %}A: {% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}A: {% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
BASE_ALPHABET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    " \n+-*/=()[]{}<>.,:;!?'\"#$%&^_|~\\@`"
)


@dataclass(frozen=True)
class TinyModelSpec:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512


def _literal(word: str) -> str:
    """``word`` as an Oniguruma pattern that matches it literally."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in word)


def build_char_tokenizer(corpus: Iterable[str] = (), alphabet: str = BASE_ALPHABET, words: Iterable[str] = ()):
    """A character-level tokenizer trained on ``corpus``: every character becomes one token, except the
    ``words``, each of which is one token wherever it occurs (the longest one that fits, at every position)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # heavy: deferred
    from transformers import PreTrainedTokenizerFast  # heavy: deferred

    words = sorted(set(words), key=lambda w: (-len(w), w))
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    pattern = "|".join([*map(_literal, words), r"[\s\S]"])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tok.train_from_iterator([alphabet, *words, *corpus], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_llama(tokenizer, spec: TinyModelSpec = TinyModelSpec(), seed: int = 0):
    """A randomly initialised Llama sized by ``spec`` for ``tokenizer``."""
    import torch  # heavy: deferred
    from transformers import LlamaConfig, LlamaForCausalLM  # heavy: deferred

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    return LlamaForCausalLM(config)


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """Save model + tokenizer in Hugging Face format, atomically (temp dir, then rename)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def build_random_tiny_model(out_dir: str | Path, *, spec: TinyModelSpec = TinyModelSpec(), seed: int = 0) -> Path:
    """Tokenizer + untrained tiny Llama saved to ``out_dir`` (the tests' smallest model)."""
    tok = build_char_tokenizer()
    return save_model(build_tiny_llama(tok, spec, seed), tok, out_dir)
