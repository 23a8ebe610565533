"""Letter tokenizer of an exported fine-tuned Fast-HuBERT: CTC decoding exactly as fast-hubert-decode.

The vocabulary is fairseq's letter dictionary (``dict.ltr.txt``): ids 0..3 are ``<s>`` (the CTC
blank, fairseq's ``task.blank_symbol``), ``<pad>``, ``</s>``, ``<unk>``; then the letters, ``|``
ending each word. Greedy decoding: repeats collapsed, then every id below ``num_special_units``
dropped (the blank and the other three), ``|`` becomes a space, words joined by single spaces.
transformers' ``Wav2Vec2CTCTokenizer`` keeps ``<unk>`` / ``</s>`` / ``<pad>`` as text in the ASR
pipeline and can leave double spaces; this subclass decodes as fairseq does.
"""

from itertools import groupby

from transformers import Wav2Vec2CTCTokenizer


class FastHubertCTCTokenizer(Wav2Vec2CTCTokenizer):
    def __init__(self, vocab_file, num_special_units: int = 4, **kwargs):
        kwargs.setdefault("pad_token", "<s>")  # the CTC blank
        kwargs.setdefault("bos_token", None)
        kwargs.setdefault("eos_token", "</s>")
        kwargs.setdefault("unk_token", "<unk>")
        kwargs.setdefault("word_delimiter_token", "|")
        super().__init__(vocab_file, num_special_units=num_special_units, **kwargs)
        self.num_special_units = num_special_units

    def _decode(
        self,
        token_ids,
        skip_special_tokens=False,
        clean_up_tokenization_spaces=None,
        group_tokens=True,
        spaces_between_special_tokens=False,
        output_word_offsets=False,
        output_char_offsets=False,
    ):
        if output_word_offsets or output_char_offsets:
            return super()._decode(
                token_ids,
                skip_special_tokens,
                clean_up_tokenization_spaces,
                group_tokens,
                spaces_between_special_tokens,
                output_word_offsets,
                output_char_offsets,
            )
        ids = [int(i) for i in token_ids]
        if group_tokens:
            ids = [i for i, _ in groupby(ids)]
        letters = [self._convert_id_to_token(i) for i in ids if i >= self.num_special_units]
        text = "".join(letters).replace(self.word_delimiter_token, " ")
        return " ".join(text.split())
