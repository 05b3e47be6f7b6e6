# Cross-check helper for SentencePieceReferenceSpec, run on Debian's python3 with python3-sentencepiece.
#   train OUT.model  (stdin: first line JSON trainer options, then one JSON string per line)
#   encode MODEL     (stdin: one JSON string per line; stdout: per line {"ids": [...], "text": sp.decode(ids)})
import collections
import io
import json
import sys

import sentencepiece as spm

command, path = sys.argv[1], sys.argv[2]
lines = [line for line in sys.stdin.read().split("\n") if line]
if command == "train":
    options = json.loads(lines[0])
    texts = [json.loads(line) for line in lines[1:]]
    # Train on strings made of characters seen at least 20 times, so the vocabulary is merges, not one piece per
    # rare character; the encode step then meets the rare ones as byte fallback or unknown.
    counts = collections.Counter(ch for t in texts for ch in t)
    train = [t for t in texts if all(counts[ch] >= 20 for ch in t)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train), model_writer=model, model_type="bpe",
                                   normalization_rule_name="identity", character_coverage=0.9995, minloglevel=2, **options)
    with open(path, "wb") as out:
        out.write(model.getvalue())
elif command == "encode":
    sp = spm.SentencePieceProcessor(model_file=path)
    out = sys.stdout
    for line in lines:
        ids = sp.encode(json.loads(line))
        out.write(json.dumps({"ids": ids, "text": sp.decode(ids)}, ensure_ascii=False) + "\n")
